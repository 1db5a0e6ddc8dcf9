#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CEpoll
import Dispatch
import Foundation
import Logging

/// One client connection: reads and parses requests one at a time, runs the responder, writes responses in
/// order. All state is confined to `queue`; the socket's readiness comes from its event loop, whose thread
/// enters `queue` synchronously (inline when the queue is idle, so no thread hop). The work is split by concern: reading and parsing
/// (Connection+Reading.swift), framing and writing responses (Connection+Writing.swift), and the
/// deadlines (Connection+Timers.swift); this file holds the state and the lifecycle.
final class Connection: EventLoopHandler {
    enum Phase { case head, body, responding, lingering, closed }
    enum TimerKind { case none, header, body, idle, write, linger }

    let fd: Int32
    let transport: Transport
    let server: HTTPServer
    let remote: String
    let refuse: Bool
    /// The server's number for this connection (its key in the server's tables).
    let serial: UInt64
    let queue: DispatchQueue
    /// The loop reporting this socket's readiness.
    let loop: EventLoop
    let config: HTTPServerConfiguration
    var logger: Logger { server.logger }

    var timer: DispatchSourceTimer!
    var registered = false
    /// Whether reading is wanted now (off while too much input is buffered, after EOF, before start).
    var readActive = false
    /// Whether output (or a TLS read) waits for the socket to become writable.
    var writeActive = false
    /// The socket may hold input not yet read: set by a readable edge, cleared when a read finds it
    /// drained. An edge that arrives while reading is off is kept here until reading resumes.
    var readPending = false
    /// The loop reported the peer's FIN (or an error): a short read no longer means drained, since
    /// the end of input may wait behind the data and no further edge would announce it.
    var hangUpReported = false
    var timerKind = TimerKind.none
    /// When the current deadline passes, and when the dispatch timer is set to fire (monotonic ns).
    var timerDeadline: UInt64 = .max
    var timerFiresAt: UInt64 = .max
    var timerActivated = false

    var parser: HTTPRequestParser
    var input: [UInt8] = []
    var inputPos = 0
    var output: [[UInt8]] = []
    var outputPos = 0
    var outputBytes = 0

    var phase = Phase.head
    var handshaking: Bool
    var readBlockedOnWrite = false
    var peerEOF = false
    var requestsServed = 0
    var lingerDiscarded = 0

    // The request in progress.
    var head: HTTPRequestHead?
    var keepAlive = true
    var sink: BodySink?
    var closeAfterResponse = false
    var responderRunning = false
    var responseComplete = false
    var requestSpoolPath: String?
    var fileBody: (fd: Int32, remaining: Int)?
    var streaming = false
    var streamTask: Task<Void, Never>?
    var drainWaiters: [CheckedContinuation<Bool, Never>] = []
    var responderTask: Task<Void, Never>?
    // The request body's and the response's deadlines (stall and minimum rate).
    var bodyDeadline: TransferDeadline?
    var responseDeadline: TransferDeadline?
    static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

    static let readChunk = 64 * 1024
    static let maxBufferedWhileResponding = 256 * 1024
    static let streamHighWater = 256 * 1024
    /// A body up to this size is sent in the same buffer as the head.
    static let coalescedBodyLimit = 64 * 1024
    var dateCache = HTTPDateCache()

    init(fd: Int32, transport: Transport, server: HTTPServer, loop: EventLoop, remote: String, refuse: Bool, serial: UInt64) {
        self.fd = fd
        self.loop = loop
        self.serial = serial
        self.transport = transport
        self.server = server
        self.remote = remote
        self.refuse = refuse
        self.config = server.configuration
        self.queue = DispatchQueue(label: "stylist.http.connection", target: .global(qos: .userInitiated))
        self.parser = HTTPRequestParser(limits: server.configuration.parserLimits)
        self.handshaking = transport is TLSTransport
        timer = DispatchSource.makeTimerSource(queue: queue)
        timer.setEventHandler { [unowned self] in onTimer() }
    }

    // MARK: - Lifecycle

    func start() {
        queue.async { [self] in
            guard phase != .closed else { return }
            timer.schedule(deadline: .distantFuture)
            timer.resume()
            timerActivated = true
            // Registered from the queue: readiness reported meanwhile waits for this block to finish.
            guard loop.register(fd: fd, id: serial, handler: self) else {
                logger.error("cannot watch a connection", metadata: ["remote": "\(remote)", "error": "\(String(cString: strerror(errno)))"])
                close()
                return
            }
            registered = true
            // Over the limit on TLS: closed before any handshake work (the handshake is the costly part).
            if refuse && handshaking { close(); return }
            if refuse {
                arm(.linger, seconds: 5)
            } else {
                arm(.header, seconds: config.headerTimeout)
            }
            if handshaking {
                readActive = true
                continueHandshake()
            } else {
                ready()
            }
        }
    }

    /// Transport ready (TLS handshake done).
    func ready() {
        if refuse {
            keepAlive = false
            closeAfterResponse = true
            phase = .responding
            var response = HTTPResponse.problem(status: 503, title: "Service Unavailable",
                                                detail: "The server has too many open connections; retry shortly.")
            response.headers["Retry-After"] = "1"
            server.responder.serverRejected(status: 503, detail: "connection limit reached", head: nil, remoteAddress: remote)
            startResponse(response, for: nil)
            return
        }
        readActive = true
        onReadable()
    }

    /// The event loop saw the socket ready: handled here, on the loop's thread, inside the queue.
    func socketReady(_ events: UInt32) {
        queue.sync { handleReadiness(events) }
    }

    func handleReadiness(_ events: UInt32) {
        guard phase != .closed else { return }
        let errorOrHangUp = EPOLLERR.rawValue | EPOLLHUP.rawValue
        if events & (EPOLLIN.rawValue | EPOLLRDHUP.rawValue | errorOrHangUp) != 0 { readPending = true }
        if events & (EPOLLRDHUP.rawValue | errorOrHangUp) != 0 { hangUpReported = true }
        // Writable edges arrive with most readable ones; they matter only while output waits.
        if writeActive && events & (EPOLLOUT.rawValue | errorOrHangUp) != 0 { onWritable() }
        if readActive && readPending { onReadable() }
    }

    func continueHandshake() {
        switch transport.handshake() {
        case .done:
            handshaking = false
            disableWrite()
            ready()
        case .wouldBlock:
            if transport.wantsWrite { enableWrite() } else { readPending = false; disableWrite() }
        case .eof, .failed:
            close()
        }
    }

    /// Graceful shutdown: close if idle, otherwise close after the current response.
    func beginShutdown() {
        guard phase != .closed else { return }
        if phase == .head && parser.isIdle && inputPos == input.count {
            close()
        } else {
            keepAlive = false
            closeAfterResponse = true
        }
    }

    /// Closes at once: cancels sources and any stream, deletes spool files not owned by a running responder.
    func close() {
        guard phase != .closed else { return }
        phase = .closed
        if timerActivated { timer.cancel() } else { timer.resume(); timer.cancel() }
        timerKind = .none
        let waiters = drainWaiters
        drainWaiters = []
        for w in waiters { w.resume(returning: false) }
        streamTask?.cancel()
        streamTask = nil
        responderTask?.cancel()   // a long poll whose client went away stops waiting
        responderTask = nil
        sink?.discard()
        sink = nil
        if !responderRunning { removeRequestSpool() }
        if let fb = fileBody { Glibc.close(fb.fd); fileBody = nil }
        output = []
        input = []
        readActive = false
        writeActive = false
        // Deregistered before the descriptor closes, so the number cannot be reused while still watched.
        if registered { loop.deregister(fd: fd, id: serial) }
        registered = false
        Glibc.close(fd)
        transport.free()
        server.connectionDidClose(self)
    }

    func removeRequestSpool() {
        if let path = requestSpoolPath { unlink(path) }
        requestSpoolPath = nil
    }

    /// Resumes reading; input that arrived while it was off is read from the queue, as a later event would.
    func enableRead() {
        guard !readActive && phase != .closed else { return }
        readActive = true
        if readPending {
            queue.async { [self] in
                if readActive && readPending && phase != .closed { onReadable() }
            }
        }
    }
    func disableRead() { readActive = false }
    /// Waits for the next writable edge (after a write or TLS operation found the socket full).
    func enableWrite() { if phase != .closed { writeActive = true } }
    func disableWrite() { writeActive = false }
}
