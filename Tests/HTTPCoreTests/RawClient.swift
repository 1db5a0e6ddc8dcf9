#if canImport(Glibc)
import Glibc
#endif
import Foundation
import COpenSSL
import HTTPCore

struct ClientError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

/// A parsed response as seen on the wire.
struct RawResponse {
    var status: Int
    var headers: HTTPHeaders
    var body: [UInt8]
    var text: String { String(decoding: body, as: UTF8.self) }
}

/// A tiny blocking HTTP/1.1 client over a raw socket (optionally TLS), for tests.
final class RawClient {
    let fd: Int32
    var ssl: OpaquePointer?
    var sslCtx: OpaquePointer?
    var buffer: [UInt8] = []

    init(port: Int, host: String = "127.0.0.1", tls: Bool = false, timeout: Double = 10) throws {
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        inet_pton(AF_INET, host, &addr.sin_addr)
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw ClientError("socket failed") }
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else { Glibc.close(fd); throw ClientError("connect failed: \(String(cString: strerror(errno)))") }
        setTimeout(timeout)
        if tls {
            sslCtx = SSL_CTX_new(TLS_client_method())
            ssl = SSL_new(sslCtx)
            SSL_set_fd(ssl, fd)
            guard SSL_connect(ssl) == 1 else { throw ClientError("TLS handshake failed") }
        }
    }

    deinit { close() }

    func setTimeout(_ seconds: Double) {
        var tv = timeval(tv_sec: Int(seconds), tv_usec: Int((seconds - seconds.rounded(.down)) * 1_000_000))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    private var closed = false
    func close() {
        if closed { return }
        closed = true
        if let ssl { SSL_free(ssl) }
        if let sslCtx { SSL_CTX_free(sslCtx) }
        Glibc.close(fd)
    }

    func send(_ text: String) throws { try send(Array(text.utf8)) }

    func send(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let n: Int = bytes.withUnsafeBytes { raw in
                if let ssl { return Int(SSL_write(ssl, raw.baseAddress! + offset, Int32(raw.count - offset))) }
                return Glibc.send(fd, raw.baseAddress! + offset, raw.count - offset, Int32(MSG_NOSIGNAL))
            }
            guard n > 0 else { throw ClientError("send failed: \(String(cString: strerror(errno)))") }
            offset += n
        }
    }

    /// Reads more bytes into the buffer; false at EOF; throws on timeout.
    @discardableResult
    func fill() throws -> Bool {
        var chunk = [UInt8](repeating: 0, count: 65536)
        let n: Int = chunk.withUnsafeMutableBytes { raw in
            if let ssl { return Int(SSL_read(ssl, raw.baseAddress, Int32(raw.count))) }
            return recv(fd, raw.baseAddress, raw.count, 0)
        }
        if n > 0 { buffer += chunk[0..<n]; return true }
        if n == 0 { return false }
        if ssl != nil { return false }
        if errno == EAGAIN || errno == EWOULDBLOCK { throw ClientError("read timed out") }
        if errno == ECONNRESET { return false }
        throw ClientError("recv failed: \(String(cString: strerror(errno)))")
    }

    func readLine() throws -> String {
        while true {
            if let i = find([0x0D, 0x0A]) {
                let line = String(decoding: buffer[..<i], as: UTF8.self)
                buffer.removeFirst(i + 2)
                return line
            }
            guard try fill() else { throw ClientError("connection closed while reading a line; got \(String(decoding: buffer, as: UTF8.self))") }
        }
    }

    private func find(_ needle: [UInt8]) -> Int? {
        guard buffer.count >= needle.count else { return nil }
        for i in 0...(buffer.count - needle.count) where buffer[i] == needle[0] && Array(buffer[i..<(i + needle.count)]) == needle { return i }
        return nil
    }

    func readBytes(_ n: Int) throws -> [UInt8] {
        while buffer.count < n {
            guard try fill() else { throw ClientError("connection closed after \(buffer.count) of \(n) body bytes") }
        }
        let out = Array(buffer[..<n])
        buffer.removeFirst(n)
        return out
    }

    /// Status line and headers.
    func readHead() throws -> (Int, HTTPHeaders) {
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

    /// One chunk of a chunked body (nil for the last chunk).
    func readChunk() throws -> [UInt8]? {
        let sizeLine = try readLine()
        guard let size = Int(sizeLine.split(separator: ";")[0], radix: 16) else { throw ClientError("bad chunk size '\(sizeLine)'") }
        if size == 0 {
            while try !readLine().isEmpty {}
            return nil
        }
        let data = try readBytes(size)
        guard try readLine().isEmpty else { throw ClientError("chunk not followed by CRLF") }
        return data
    }

    /// A whole response (skipping 1xx unless `allowInterim`).
    func readResponse(forHEAD: Bool = false, allowInterim: Bool = false) throws -> RawResponse {
        while true {
            let (status, headers) = try readHead()
            if status >= 100 && status < 200 && !allowInterim { continue }
            if forHEAD || status == 204 || status == 304 || status < 200 {
                return RawResponse(status: status, headers: headers, body: [])
            }
            if headers["Transfer-Encoding"]?.lowercased() == "chunked" {
                var body: [UInt8] = []
                while let chunk = try readChunk() { body += chunk }
                return RawResponse(status: status, headers: headers, body: body)
            }
            if let cl = headers["Content-Length"], let n = Int(cl) {
                return RawResponse(status: status, headers: headers, body: try readBytes(n))
            }
            while try fill() {}
            let body = buffer
            buffer = []
            return RawResponse(status: status, headers: headers, body: body)
        }
    }

    /// Whether the server closes the connection (EOF) within the receive timeout, with nothing more sent.
    func isClosedByPeer() -> Bool {
        do {
            while try fill() {}
            return buffer.isEmpty
        } catch {
            return false
        }
    }

    /// One-shot: connect, send, read a response.
    static func request(port: Int, _ text: String, tls: Bool = false) throws -> RawResponse {
        let c = try RawClient(port: port, tls: tls)
        try c.send(text)
        return try c.readResponse(forHEAD: text.hasPrefix("HEAD "))
    }
}
