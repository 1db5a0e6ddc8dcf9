#if canImport(Glibc)
import Glibc
#endif
import Foundation
import HTTPCore

/// A client-side failure (connect, timeout, malformed answer).
public struct ClientError: Error, CustomStringConvertible {
    public var description: String
    public init(_ d: String) { description = d }
}

/// A response as read off the wire.
public struct ClientResponse: CustomStringConvertible {
    public var status: Int
    public var headers: HTTPHeaders
    public var body: [UInt8]
    /// The body as UTF-8 text.
    public var text: String { String(decoding: body, as: UTF8.self) }
    /// The body parsed as a JSON object (nil when it is not one).
    public var json: [String: Any]? { (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any] }
    public var description: String { "\(status) \(headers["Content-Type"] ?? "") \(text.prefix(400))" }
}

/// multipart/form-data bodies for tests.
public struct MultipartForm {
    public let boundary: String
    private var parts: [(name: String, filename: String?, contentType: String?, data: [UInt8])] = []

    public init(boundary: String = "stylist-test-\(UInt64.random(in: 0...UInt64.max))") { self.boundary = boundary }

    /// Adds a text field.
    public mutating func field(_ name: String, _ value: String) {
        parts.append((name, nil, nil, Array(value.utf8)))
    }

    /// Adds a file part.
    public mutating func file(_ name: String, _ data: [UInt8], filename: String = "image.png", contentType: String = "application/octet-stream") {
        parts.append((name, filename, contentType, data))
    }

    /// The request's Content-Type.
    public var contentType: String { "multipart/form-data; boundary=\(boundary)" }

    /// The encoded body.
    public var body: [UInt8] {
        var out: [UInt8] = []
        for p in parts {
            var head = "--\(boundary)\r\nContent-Disposition: form-data; name=\"\(p.name)\""
            if let f = p.filename { head += "; filename=\"\(f)\"" }
            head += "\r\n"
            if let ct = p.contentType { head += "Content-Type: \(ct)\r\n" }
            head += "\r\n"
            out += Array(head.utf8)
            out += p.data
            out += Array("\r\n".utf8)
        }
        out += Array("--\(boundary)--\r\n".utf8)
        return out
    }
}

/// One server-sent event.
public struct ServerSentEvent: Equatable {
    public var id: String?
    public var event: String?
    public var data: String
    /// `data` parsed as a JSON object.
    public var json: [String: Any]? { (try? JSONSerialization.jsonObject(with: Data(data.utf8))) as? [String: Any] }
    public static func == (a: ServerSentEvent, b: ServerSentEvent) -> Bool { a.id == b.id && a.event == b.event && a.data == b.data }
}

/// A small blocking HTTP/1.1 client over one raw TCP socket (no Foundation networking): keep-alive,
/// pipelining (send several, then read several), chunked uploads, `Expect: 100-continue`, SSE.
public final class HTTPClient {
    public let port: Int
    let fd: Int32
    var buffer: [UInt8] = []
    private var closed = false
    /// Extra headers sent with every `request` (e.g. Authorization).
    public var defaultHeaders: [(String, String)] = []

    /// Connects to 127.0.0.1:`port`; reads time out after `timeout` seconds.
    public init(port: Int, timeout: Double = 30) throws {
        self.port = port
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr)
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw ClientError("socket failed") }
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
    }

    deinit { close() }

    /// Sets the receive timeout.
    public func setTimeout(_ seconds: Double) {
        var tv = timeval(tv_sec: Int(seconds), tv_usec: Int((seconds - seconds.rounded(.down)) * 1_000_000))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    public func close() {
        if closed { return }
        closed = true
        Glibc.close(fd)
    }

    // MARK: Raw I/O

    public func send(_ text: String) throws { try send(Array(text.utf8)) }

    public func send(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw ClientError("send failed: \(String(cString: strerror(errno)))") }
            offset += n
        }
    }

    /// Reads more bytes; false at EOF; throws on timeout.
    @discardableResult
    public func fill() throws -> Bool {
        var chunk = [UInt8](repeating: 0, count: 65536)
        let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n > 0 { buffer += chunk[0..<n]; return true }
        if n == 0 { return false }
        if errno == EAGAIN || errno == EWOULDBLOCK { throw ClientError("read timed out") }
        if errno == ECONNRESET { return false }
        throw ClientError("recv failed: \(String(cString: strerror(errno)))")
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
    public func readHead() throws -> (Int, HTTPHeaders) {
        let statusLine = try readLine()
        let parts = statusLine.split(separator: " ", maxSplits: 2)
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), let status = Int(parts[1]) else {
            throw ClientError("bad status line '\(statusLine)'")
        }
        var headers = HTTPHeaders()
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

    // MARK: Requests

    /// The request bytes (Host, Content-Length for a body, default headers added).
    public func encode(_ method: String, _ target: String, headers: [(String, String)] = [], body: [UInt8]? = nil) -> [UInt8] {
        var text = "\(method) \(target) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\n"
        for (n, v) in defaultHeaders + headers { text += "\(n): \(v)\r\n" }
        if let body, !headers.contains(where: { $0.0.lowercased() == "transfer-encoding" }) {
            text += "Content-Length: \(body.count)\r\n"
        }
        text += "\r\n"
        return Array(text.utf8) + (body ?? [])
    }

    /// Sends one request and reads its response on this connection.
    public func request(_ method: String, _ target: String, headers: [(String, String)] = [], body: [UInt8]? = nil) throws -> ClientResponse {
        try send(encode(method, target, headers: headers, body: body))
        return try readResponse(forHEAD: method == "HEAD")
    }

    public func get(_ target: String, headers: [(String, String)] = []) throws -> ClientResponse {
        try request("GET", target, headers: headers)
    }

    public func delete(_ target: String, headers: [(String, String)] = []) throws -> ClientResponse {
        try request("DELETE", target, headers: headers)
    }

    /// POSTs a multipart form.
    public func post(_ target: String, form: MultipartForm, headers: [(String, String)] = []) throws -> ClientResponse {
        try request("POST", target, headers: [("Content-Type", form.contentType)] + headers, body: form.body)
    }

    /// POSTs a multipart form with `Transfer-Encoding: chunked`, in chunks of `chunkSize` bytes.
    public func postChunked(_ target: String, form: MultipartForm, chunkSize: Int = 4096, headers: [(String, String)] = []) throws -> ClientResponse {
        try send(encode("POST", target, headers: [("Content-Type", form.contentType), ("Transfer-Encoding", "chunked")] + headers))
        let body = form.body
        var i = 0
        while i < body.count {
            let n = min(chunkSize, body.count - i)
            try send(Array((String(n, radix: 16) + "\r\n").utf8) + body[i..<(i + n)] + [0x0D, 0x0A])
            i += n
        }
        try send("0\r\n\r\n")
        return try readResponse()
    }

    /// POSTs with `Expect: 100-continue`: sends the head, waits for the interim answer (or a final
    /// refusal), then the body. Returns the interim status (nil if none came) and the final response.
    public func postExpectingContinue(_ target: String, form: MultipartForm, headers: [(String, String)] = []) throws -> (interim: Int?, response: ClientResponse, secondsToContinue: Double) {
        let body = form.body
        let start = Date()
        try send(encode("POST", target, headers: [("Content-Type", form.contentType), ("Content-Length", String(body.count)),
                                                   ("Expect", "100-continue")] + headers, body: nil))
        let first = try readResponse(allowInterim: true)
        let waited = Date().timeIntervalSince(start)
        guard first.status == 100 else { return (nil, first, waited) }
        try send(body)
        return (100, try readResponse(), waited)
    }

    // MARK: Server-sent events

    /// Sends `GET target` with `Accept: text/event-stream` and reads the response head.
    public func openEvents(_ target: String) throws -> (Int, HTTPHeaders) {
        try send(encode("GET", target, headers: [("Accept", "text/event-stream")]))
        return try readHead()
    }

    private var sseText = ""
    private var sseEnded = false

    /// The next event of an open chunked SSE response; nil when the stream ended. Comments and
    /// `retry:` lines are skipped.
    public func nextEvent() throws -> ServerSentEvent? {
        while true {
            if let range = sseText.range(of: "\n\n") {
                let block = String(sseText[..<range.lowerBound])
                sseText.removeSubrange(..<range.upperBound)
                var event = ServerSentEvent(id: nil, event: nil, data: "")
                var dataLines: [String] = []
                for line in block.split(separator: "\n", omittingEmptySubsequences: false) {
                    if line.hasPrefix(":") { continue }
                    let (field, value): (Substring, Substring)
                    if let colon = line.firstIndex(of: ":") {
                        field = line[..<colon]
                        var v = line[line.index(after: colon)...]
                        if v.hasPrefix(" ") { v = v.dropFirst() }
                        value = v
                    } else {
                        field = line
                        value = ""
                    }
                    switch field {
                    case "id": event.id = String(value)
                    case "event": event.event = String(value)
                    case "data": dataLines.append(String(value))
                    default: break
                    }
                }
                if dataLines.isEmpty { continue }
                event.data = dataLines.joined(separator: "\n")
                return event
            }
            if sseEnded { return nil }
            guard let chunk = try readChunk() else { sseEnded = true; continue }
            sseText += String(decoding: chunk, as: UTF8.self)
        }
    }
}
