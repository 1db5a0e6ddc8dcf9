#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// A byte stream layered over the client's socket once it is connected (TLS, in the tests that
/// need it), so this target links no TLS library.
public protocol ClientStreamLayer: AnyObject {
    /// Writes some of `bytes`; the count written, or <= 0 on failure.
    func write(_ bytes: UnsafeRawBufferPointer) -> Int
    /// Reads into `buffer`; the count read, or <= 0 at the end of the stream or on failure.
    func read(into buffer: UnsafeMutableRawBufferPointer) -> Int
    /// Releases the layer (the client closes the socket itself).
    func close()
}

/// A small blocking HTTP/1.1 client over one raw TCP socket (no Foundation networking), for tests
/// of the HTTP core and the service: keep-alive, pipelining (send several, then read several),
/// hand-written and malformed requests, chunked uploads, `Expect: 100-continue`, server-sent
/// events, and misbehaving peers (half a request, slow readers, resets).
public final class HTTPClient {
    public let port: Int
    /// The socket, for tests that set options or shut down one direction themselves.
    public let fd: Int32
    var buffer: [UInt8] = []
    private var layer: ClientStreamLayer?
    private var closed = false
    /// Event-stream text received but not yet returned as events (`nextEvent`).
    var sseText = ""
    var sseEnded = false
    /// Extra headers sent with every `request` (e.g. Authorization).
    public var defaultHeaders: [(String, String)] = []

    /// Connects to `host`:`port`; reads time out after `timeout` seconds. `receiveBufferSize` (set
    /// before connecting, so the advertised window is small from the start) makes a slow reader;
    /// `layer` wraps the connected socket (a TLS handshake).
    public init(port: Int, host: String = "127.0.0.1", timeout: Double = 30, receiveBufferSize: Int32? = nil,
                layer: ((Int32) throws -> ClientStreamLayer)? = nil) throws {
        self.port = port
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        inet_pton(AF_INET, host, &addr.sin_addr)
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw ClientError("socket failed: \(String(cString: strerror(errno)))") }
        if var size = receiveBufferSize {
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else {
            let e = errno
            Glibc.close(fd)
            throw ClientError("connect to port \(port) failed: \(String(cString: strerror(e)))")
        }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        setTimeout(timeout)
        if let layer {
            do { self.layer = try layer(fd) } catch { Glibc.close(fd); closed = true; throw error }
        }
    }

    // Closed once only: a test server shares this process, and a second close could hit a
    // descriptor the server has opened since.
    deinit { close() }

    /// Sets the receive timeout.
    public func setTimeout(_ seconds: Double) {
        var tv = timeval(tv_sec: Int(seconds), tv_usec: Int((seconds - seconds.rounded(.down)) * 1_000_000))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    /// Closes the connection (an orderly FIN).
    public func close() {
        if closed { return }
        closed = true
        layer?.close()
        layer = nil
        Glibc.close(fd)
    }

    /// Closes with a reset (SO_LINGER 0), as a client that vanishes does.
    public func reset() {
        guard !closed else { return }
        var l = linger(l_onoff: 1, l_linger: 0)
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, socklen_t(MemoryLayout<linger>.size))
        close()
    }

    // MARK: Raw I/O

    public func send(_ text: String) throws { try send(Array(text.utf8)) }

    public func send(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let n: Int = bytes.withUnsafeBytes { raw in
                let rest = UnsafeRawBufferPointer(rebasing: raw[offset...])
                if let layer { return layer.write(rest) }
                return Glibc.send(fd, rest.baseAddress, rest.count, Int32(MSG_NOSIGNAL))
            }
            guard n > 0 else { throw ClientError("send failed: \(String(cString: strerror(errno)))") }
            offset += n
        }
    }

    /// Sends what the socket takes at once and ignores the rest and any failure: for the many
    /// connections of a flood, which must never block the test (the server may close them).
    public func sendWithoutWaiting(_ text: String) {
        _ = Array(text.utf8).withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) }
    }

    /// Reads up to `maxBytes` more into the buffer; false at EOF (or a reset); throws on timeout.
    @discardableResult
    public func fill(maxBytes: Int = 65536) throws -> Bool {
        var chunk = [UInt8](repeating: 0, count: maxBytes)
        let n: Int = chunk.withUnsafeMutableBytes { raw in
            if let layer { return layer.read(into: raw) }
            return recv(fd, raw.baseAddress, raw.count, 0)
        }
        if n > 0 { buffer += chunk[0..<n]; return true }
        if n == 0 || layer != nil { return false }
        if errno == EAGAIN || errno == EWOULDBLOCK { throw ClientError("read timed out") }
        if errno == ECONNRESET { return false }
        throw ClientError("recv failed: \(String(cString: strerror(errno)))")
    }

    /// Reads up to `maxBytes` and drops them, as a slow reader does; false at EOF; throws on timeout.
    public func receiveAndDiscard(maxBytes: Int) throws -> Bool {
        defer { buffer.removeAll(keepingCapacity: true) }
        return try fill(maxBytes: maxBytes)
    }

    private func find(_ needle: [UInt8]) -> Int? {
        guard buffer.count >= needle.count else { return nil }
        var i = 0
        while i <= buffer.count - needle.count {
            if buffer[i] == needle[0] && Array(buffer[i..<(i + needle.count)]) == needle { return i }
            i += 1
        }
        return nil
    }

    public func readLine() throws -> String {
        while true {
            if let i = find([0x0D, 0x0A]) {
                let line = String(decoding: buffer[..<i], as: UTF8.self)
                buffer.removeFirst(i + 2)
                return line
            }
            guard try fill() else { throw ClientError("connection closed while reading a line (had: \(String(decoding: buffer, as: UTF8.self)))") }
        }
    }

    public func readBytes(_ n: Int) throws -> [UInt8] {
        while buffer.count < n {
            guard try fill() else { throw ClientError("connection closed after \(buffer.count) of \(n) body bytes") }
        }
        let out = Array(buffer[..<n])
        buffer.removeFirst(n)
        return out
    }

    /// A status line and header block.
    public func readHead() throws -> (Int, ResponseHeaders) {
        let statusLine = try readLine()
        let parts = statusLine.split(separator: " ", maxSplits: 2)
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), let status = Int(parts[1]) else {
            throw ClientError("bad status line '\(statusLine)'")
        }
        var headers = ResponseHeaders()
        while true {
            let line = try readLine()
            if line.isEmpty { break }
            guard let colon = line.firstIndex(of: ":") else { throw ClientError("bad header '\(line)'") }
            headers.add(String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces))
        }
        return (status, headers)
    }

    /// One chunk of a chunked body (nil for the last one).
    public func readChunk() throws -> [UInt8]? {
        let sizeLine = try readLine()
        guard let size = Int(sizeLine.split(separator: ";").first.map(String.init) ?? "", radix: 16) else {
            throw ClientError("bad chunk size '\(sizeLine)'")
        }
        if size == 0 {
            while try !readLine().isEmpty {}
            return nil
        }
        let data = try readBytes(size)
        guard try readLine().isEmpty else { throw ClientError("chunk not followed by CRLF") }
        return data
    }

    /// A whole response; 1xx interim answers are skipped unless `allowInterim`.
    public func readResponse(forHEAD: Bool = false, allowInterim: Bool = false) throws -> ClientResponse {
        while true {
            let (status, headers) = try readHead()
            if status >= 100 && status < 200 && !allowInterim { continue }
            if forHEAD || status == 204 || status == 304 || status < 200 {
                return ClientResponse(status: status, headers: headers, body: [])
            }
            if headers["Transfer-Encoding"]?.lowercased() == "chunked" {
                var body: [UInt8] = []
                while let chunk = try readChunk() { body += chunk }
                return ClientResponse(status: status, headers: headers, body: body)
            }
            if let cl = headers["Content-Length"], let n = Int(cl) {
                return ClientResponse(status: status, headers: headers, body: try readBytes(n))
            }
            while try fill() {}
            let body = buffer
            buffer = []
            return ClientResponse(status: status, headers: headers, body: body)
        }
    }

    /// Whether the server closes the connection (EOF) within the receive timeout, sending nothing more.
    public func isClosedByPeer() -> Bool {
        do {
            while try fill() {}
            return buffer.isEmpty
        } catch {
            return false
        }
    }

    /// One-shot: connects, sends `text` as written, reads one response.
    public static func exchange(port: Int, _ text: String, timeout: Double = 30) throws -> ClientResponse {
        let c = try HTTPClient(port: port, timeout: timeout)
        try c.send(text)
        return try c.readResponse(forHEAD: text.hasPrefix("HEAD "))
    }
}
