// HTTPCore design notes (see also docs/ARCHITECTURE.md, "HTTP core").
//
// - One request at a time per connection: the next pipelined request is parsed only after the previous
//   response has been written, so responses are in order by construction and `100 Continue` is never sent
//   ahead of an earlier response. While a response is pending, up to 256 KiB of further input is buffered,
//   then reading pauses (TCP back-pressure).
// - Timeouts: `headerTimeout` bounds the whole head from its first byte (or from accept/TLS handshake for a
//   new connection), so trickling bytes does not extend it; `bodyTimeout` is the longest silence between
//   body reads; `idleTimeout` closes an idle keep-alive connection silently and also aborts a response
//   write that makes no progress for that long. No timer runs while the responder works (long-polls, SSE).
// - Every error the server produces itself is problem+json with `Connection: close`, followed by a lingering
//   close (half-close, drain input for up to 2 s) so the client reads the answer instead of a reset.
// - Strictness: HTTP/1.1 requests need exactly one Host; POST/PUT/PATCH need Content-Length or chunked
//   (411); '.'/'..' path segments (also percent-encoded) and %00 are 400; any Content-Length or
//   Transfer-Encoding ambiguity is 400 (gzip etc. before chunked is 501); chunk extensions and trailers are
//   accepted, validated and dropped.
// - Request bodies above `bodyMemoryThreshold` (or announced as larger) are written to a mkstemp file in
//   `spoolDirectory` as they arrive and deleted after the response is sent (or when the connection dies
//   while no responder holds them). A responder that wants to keep one must move or copy it.
// - Connections: `start()` raises the open-file soft limit to the hard limit and caps `maxConnections` below
//   it. At `maxConnections`, or at `maxConnectionsPerAddress` for one client address, the oldest connection
//   that is idle or still sending its request is closed to make room (slow or idle clients cannot lock out
//   new ones); a new connection is refused with `503` + `Retry-After: 1` only when every connection is being
//   answered.
// - Bodies: besides the stall timeout, a body must average `minBodyBytesPerSecond` after a grace of
//   `bodyTimeout`, checked once a second (a byte-at-a-time trickle gets 408).
// - SIGPIPE is ignored process-wide by `start()` (OpenSSL writes through write(2)).

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Dispatch
import Foundation
import Logging

/// Why the server could not start.
public enum HTTPServerError: Error, CustomStringConvertible, Sendable {
    /// The address is already taken by another socket.
    case addressInUse(host: String, port: Int)
    /// The host could not be resolved.
    case cannotResolve(host: String, reason: String)
    /// socket/bind/listen failed, or the spool directory is unusable.
    case socket(String)
    /// `start()` was called twice.
    case alreadyStarted

    public var description: String {
        switch self {
        case .addressInUse(let host, let port):
            let address = host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
            return "cannot listen on \(address): the address is already in use (is another server running on port \(port)?)"
        case .cannotResolve(let host, let reason): return "cannot resolve listen address '\(host)': \(reason)"
        case .socket(let why): return why
        case .alreadyStarted: return "the server is already started"
        }
    }
}

/// An HTTP/1.1 (and HTTPS) server on non-blocking sockets. A Dispatch source accepts connections and hands
/// them round-robin to its event loops (EventLoop.swift: one epoll thread each), which report each socket's
/// readiness; each connection's state lives on its own serial queue, entered by its loop's thread; the
/// responder runs in Tasks, so neither slow clients nor slow handlers block a thread.
public final class HTTPServer: @unchecked Sendable {
    let configuration: HTTPServerConfiguration
    let responder: HTTPResponder
    let logger: Logger
    private(set) var tlsContext: TLSContext?

    private let lock = NSLock()
    private var listenFD: Int32 = -1
    private var acceptSource: DispatchSourceRead?
    private var connections: [UInt64: Connection] = [:]
    private var nextSerial: UInt64 = 0
    /// Which connections count against the limits, and which may be closed to make room.
    private var admission = ConnectionAdmission<UInt64>(maxConnections: 1, maxPerAddress: 1)
    private var lingering = Set<UInt64>()
    private var _boundPort = 0
    private var _shuttingDown = false
    private var started = false
    private let acceptQueue = DispatchQueue(label: "stylist.http.accept")
    private var loops: EventLoopGroup?

    /// A server that is not listening yet; call `start()`.
    public init(configuration: HTTPServerConfiguration, responder: HTTPResponder, logger: Logger) {
        self.configuration = configuration
        self.responder = responder
        self.logger = logger
    }

    deinit {
        acceptSource?.cancel()
        loops?.stop()
    }

    /// The port actually bound (useful with port 0); 0 before `start()`.
    public var boundPort: Int { lock.lock(); defer { lock.unlock() }; return _boundPort }

    /// Open connections right now.
    public var connectionCount: Int { lock.lock(); defer { lock.unlock() }; return connections.count }

    var isShuttingDown: Bool { lock.lock(); defer { lock.unlock() }; return _shuttingDown }

    /// Binds and listens; throws a clear error if the port is taken or TLS files cannot be loaded.
    public func start() throws {
        lock.lock()
        if started { lock.unlock(); throw HTTPServerError.alreadyStarted }
        started = true
        lock.unlock()
        signal(SIGPIPE, SIG_IGN)
        let descriptors = Self.raiseOpenFileLimit()
        // Room for listening sockets, spool files, model and data files besides the connections.
        let maxConnections = max(1, min(configuration.maxConnections, descriptors - 256))
        if maxConnections < configuration.maxConnections {
            logger.warning("connection limit lowered to fit the open-file limit", metadata: [
                "max_connections": "\(maxConnections)", "open_file_limit": "\(descriptors)"])
        }
        lock.lock()
        admission = ConnectionAdmission(maxConnections: maxConnections, maxPerAddress: configuration.maxConnectionsPerAddress)
        lock.unlock()
        do {
            if let tls = configuration.tls { tlsContext = try TLSContext(configuration: tls) }
            try prepareSpoolDirectory()
            let group = try EventLoopGroup(count: configuration.eventLoopThreads)
            lock.lock(); loops = group; lock.unlock()
        } catch {
            lock.lock(); started = false; lock.unlock()
            throw error
        }

        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV
        var result: UnsafeMutablePointer<addrinfo>?
        let host = configuration.host.isEmpty ? nil : configuration.host
        let rc = getaddrinfo(host, String(configuration.port), &hints, &result)
        guard rc == 0, let first = result else {
            lock.lock(); started = false; lock.unlock()
            throw HTTPServerError.cannotResolve(host: configuration.host, reason: String(cString: gai_strerror(rc)))
        }
        defer { freeaddrinfo(result) }

        var lastError: HTTPServerError = .socket("no usable address for \(configuration.host)")
        var candidate: UnsafeMutablePointer<addrinfo>? = first
        var fd: Int32 = -1
        while let ai = candidate {
            candidate = ai.pointee.ai_next
            let s = socket(ai.pointee.ai_family, Int32(SOCK_STREAM.rawValue), 0)
            if s < 0 { lastError = .socket("socket() failed: \(String(cString: strerror(errno)))"); continue }
            _ = fcntl(s, F_SETFD, FD_CLOEXEC)
            var one: Int32 = 1
            setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
            if ai.pointee.ai_family == AF_INET6 {
                var zero: Int32 = 0
                setsockopt(s, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &zero, socklen_t(MemoryLayout<Int32>.size))
            }
            if bind(s, ai.pointee.ai_addr, ai.pointee.ai_addrlen) != 0 {
                let e = errno
                Glibc.close(s)
                lastError = e == EADDRINUSE ? .addressInUse(host: configuration.host, port: configuration.port)
                    : .socket("cannot bind \(configuration.host):\(configuration.port): \(String(cString: strerror(e)))")
                continue
            }
            if listen(s, 1024) != 0 {
                let e = errno
                Glibc.close(s)
                lastError = e == EADDRINUSE ? .addressInUse(host: configuration.host, port: configuration.port)
                    : .socket("cannot listen on \(configuration.host):\(configuration.port): \(String(cString: strerror(e)))")
                continue
            }
            fd = s
            break
        }
        guard fd >= 0 else {
            lock.lock(); started = false; lock.unlock()
            throw lastError
        }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)

        var storage = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        let port = Self.format(&storage).port

        let source = DispatchSource.makeReadSource(fileDescriptor: fd, queue: acceptQueue)
        source.setEventHandler { [weak self] in self?.acceptAvailable() }
        source.setCancelHandler { Glibc.close(fd) }
        lock.lock()
        listenFD = fd
        _boundPort = port
        acceptSource = source
        lock.unlock()
        source.resume()
        logger.info("HTTP server listening", metadata: [
            "host": "\(configuration.host)", "port": "\(port)", "tls": "\(configuration.tls != nil)",
        ])
    }

    /// Raises the soft open-file limit to the hard limit (an event-driven server holds one descriptor
    /// per connection); returns the soft limit now in force.
    static func raiseOpenFileLimit() -> Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 1024 }
        if limit.rlim_cur < limit.rlim_max {
            var raised = limit
            raised.rlim_cur = limit.rlim_max
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 { limit = raised }
        }
        return limit.rlim_cur > rlim_t(Int32.max) ? Int(Int32.max) : Int(limit.rlim_cur)
    }

    /// Creates the spool directory if needed and removes request-body spool files left by a crash (older than an hour).
    private func prepareSpoolDirectory() throws {
        let dir = configuration.spoolDirectory
        do {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        } catch {
            throw HTTPServerError.socket("cannot create the spool directory \(dir): \(error.localizedDescription)")
        }
        guard access(dir, W_OK) == 0 else { throw HTTPServerError.socket("the spool directory \(dir) is not writable") }
        let cutoff = Date().addingTimeInterval(-3600)
        for name in (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [] where name.hasPrefix("stylist-body-") {
            let path = (dir as NSString).appendingPathComponent(name)
            if let modified = (try? FileManager.default.attributesOfItem(atPath: path))?[.modificationDate] as? Date, modified < cutoff {
                unlink(path)
            }
        }
    }

    /// Closes the listening socket; open connections carry on.
    public func stopAccepting() {
        lock.lock()
        let source = acceptSource
        acceptSource = nil
        listenFD = -1
        lock.unlock()
        source?.cancel()   // the cancel handler closes the descriptor
    }

    /// Stops accepting, lets in-flight requests finish (their responses carry `Connection: close`), closes idle
    /// connections at once, and force-closes whatever is left after `grace` seconds. Blocks the caller; do not
    /// call it from a responder.
    public func shutdown(grace: Double) {
        stopAccepting()
        lock.lock()
        _shuttingDown = true
        let open = Array(connections.values)
        lock.unlock()
        for connection in open { connection.queue.async { connection.beginShutdown() } }
        let deadline = Date().addingTimeInterval(max(0, grace))
        while Date() < deadline {
            lock.lock()
            let busy = connections.count - lingering.count
            lock.unlock()
            if busy <= 0 { break }
            usleep(5_000)
        }
        lock.lock()
        let left = Array(connections.values)
        let busyLeft = left.filter { !lingering.contains($0.serial) }.count
        lock.unlock()
        if busyLeft > 0 { logger.warning("closing connections still open after the shutdown grace period", metadata: ["count": "\(busyLeft)"]) }
        logger.debug("shutdown: closing remaining connections", metadata: ["open": "\(left.count)", "busy": "\(busyLeft)"])
        for connection in left { connection.queue.async { connection.close() } }
        let hardDeadline = Date().addingTimeInterval(2)
        while connectionCount > 0 && Date() < hardDeadline { usleep(10_000) }
        lock.lock()
        let group = loops
        loops = nil
        lock.unlock()
        group?.stop()
    }

    private func acceptAvailable() {
        lock.lock()
        let fd = listenFD
        lock.unlock()
        guard fd >= 0 else { return }
        for _ in 0..<256 {
            var storage = sockaddr_storage()
            var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let client = withUnsafeMutablePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { accept(fd, $0, &len) }
            }
            if client < 0 {
                let e = errno
                if e == EINTR || e == ECONNABORTED { continue }
                if e == EAGAIN || e == EWOULDBLOCK { return }
                logger.error("accept failed", metadata: ["error": "\(String(cString: strerror(e)))"])
                if e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM {
                    // Out of descriptors: back off instead of spinning on a readable listener.
                    lock.lock(); let source = acceptSource; lock.unlock()
                    source?.suspend()
                    acceptQueue.asyncAfter(deadline: .now() + 0.1) { source?.resume() }
                }
                return
            }
            _ = fcntl(client, F_SETFD, FD_CLOEXEC)
            _ = fcntl(client, F_SETFL, fcntl(client, F_GETFL) | O_NONBLOCK)
            var one: Int32 = 1
            setsockopt(client, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            let remote = Self.format(&storage)
            let remoteString = remote.ip.contains(":") ? "[\(remote.ip)]:\(remote.port)" : "\(remote.ip):\(remote.port)"

            let transport: Transport
            if let tls = tlsContext {
                guard let t = TLSTransport(fd: client, context: tls) else { Glibc.close(client); continue }
                transport = t
            } else {
                transport = PlainTransport(fd: client)
            }
            lock.lock()
            guard let loop = loops?.next() else { lock.unlock(); Glibc.close(client); transport.free(); return }
            nextSerial += 1
            let serial = nextSerial
            let decision = admission.admit(serial, address: remote.ip, now: DispatchTime.now().uptimeNanoseconds)
            let victims = decision.evict.compactMap { connections[$0] }
            let refuse = decision.refuse
            let connection = Connection(fd: client, transport: transport, server: self, loop: loop, remote: remoteString, refuse: refuse, serial: serial)
            connections[serial] = connection
            let limit = admission.maxConnections
            lock.unlock()
            for victim in victims {
                logger.info("closing the oldest idle or incomplete connection to make room", metadata: ["remote": "\(victim.remote)"])
                victim.queue.async { victim.close() }
            }
            if refuse {
                logger.warning("connection limit reached; refusing with 503", metadata: ["remote": "\(remoteString)", "limit": "\(limit)"])
            }
            connection.start()
        }
    }

    /// The connection has sent its last response and is only draining input before closing.
    func connectionIsLingering(_ connection: Connection) {
        lock.lock()
        lingering.insert(connection.serial)
        lock.unlock()
    }

    func connectionDidClose(_ connection: Connection) {
        lock.lock()
        lingering.remove(connection.serial)
        connections[connection.serial] = nil
        admission.closed(connection.serial)
        lock.unlock()
    }

    /// The connection's request is complete and being answered: it is not closed to make room.
    func connectionBecameBusy(_ connection: Connection) {
        lock.lock()
        admission.busy(connection.serial)
        lock.unlock()
    }

    /// The connection is idle again (keep-alive, waiting for the next request).
    func connectionBecameEvictable(_ connection: Connection) {
        lock.lock()
        admission.idle(connection.serial, now: DispatchTime.now().uptimeNanoseconds)
        lock.unlock()
    }

    static func format(_ storage: inout sockaddr_storage) -> (ip: String, port: Int) {
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        switch Int32(storage.ss_family) {
        case AF_INET:
            return withUnsafePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { p in
                    var addr = p.pointee.sin_addr
                    inet_ntop(AF_INET, &addr, &buffer, socklen_t(buffer.count))
                    return (String(cString: buffer), Int(UInt16(bigEndian: p.pointee.sin_port)))
                }
            }
        case AF_INET6:
            return withUnsafePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { p in
                    var addr = p.pointee.sin6_addr
                    inet_ntop(AF_INET6, &addr, &buffer, socklen_t(buffer.count))
                    var ip = String(cString: buffer)
                    if ip.hasPrefix("::ffff:") && ip.contains(".") { ip = String(ip.dropFirst(7)) }
                    return (ip, Int(UInt16(bigEndian: p.pointee.sin6_port)))
                }
            }
        default:
            return ("unknown", 0)
        }
    }
}
