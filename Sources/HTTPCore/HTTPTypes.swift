import Foundation

/// Ordered HTTP header fields with case-insensitive names; repeated names keep their order.
public struct HTTPHeaders: Sendable, Sequence, ExpressibleByDictionaryLiteral, Equatable, CustomStringConvertible {
    @usableFromInline var storage: [(name: String, value: String)]

    /// An empty header list.
    public init() { storage = [] }

    /// Headers from (name, value) pairs, in order.
    public init(_ pairs: [(String, String)]) { storage = pairs.map { (name: $0.0, value: $0.1) } }

    public init(dictionaryLiteral elements: (String, String)...) {
        storage = elements.map { (name: $0.0, value: $0.1) }
    }

    /// The first value for `name`; setting replaces every field with that name (nil removes them).
    public subscript(name: String) -> String? {
        get {
            for field in storage where field.name.equalsASCIICaseInsensitive(name) { return field.value }
            return nil
        }
        set {
            guard let newValue else { remove(name); return }
            if let index = storage.firstIndex(where: { $0.name.equalsASCIICaseInsensitive(name) }) {
                storage[index].value = newValue
                var i = storage.count - 1
                while i > index {
                    if storage[i].name.equalsASCIICaseInsensitive(name) { storage.remove(at: i) }
                    i -= 1
                }
            } else {
                storage.append((name: name, value: newValue))
            }
        }
    }

    /// Every value for `name`, in order (a field sent twice gives two values; commas are not split).
    public func values(_ name: String) -> [String] {
        storage.compactMap { $0.name.equalsASCIICaseInsensitive(name) ? $0.value : nil }
    }

    /// Appends a field, keeping any existing ones with the same name.
    public mutating func add(_ name: String, _ value: String) { storage.append((name: name, value: value)) }

    /// Removes every field named `name`.
    public mutating func remove(_ name: String) { storage.removeAll { $0.name.equalsASCIICaseInsensitive(name) } }

    /// Whether a field named `name` is present.
    public func contains(_ name: String) -> Bool { storage.contains { $0.name.equalsASCIICaseInsensitive(name) } }

    /// Number of fields (repeated names counted separately).
    public var count: Int { storage.count }

    /// Whether the comma-separated tokens of `name` include `token` (case-insensitive), e.g. `Connection: close`.
    public func containsToken(_ name: String, _ token: String) -> Bool {
        for value in values(name) {
            for part in value.split(separator: ",") {
                if part.trimmingCharacters(in: .whitespaces).equalsASCIICaseInsensitive(token) { return true }
            }
        }
        return false
    }

    public func makeIterator() -> IndexingIterator<[(name: String, value: String)]> { storage.makeIterator() }

    public static func == (lhs: HTTPHeaders, rhs: HTTPHeaders) -> Bool {
        lhs.storage.count == rhs.storage.count
            && zip(lhs.storage, rhs.storage).allSatisfy { $0.name == $1.name && $0.value == $1.value }
    }

    public var description: String { storage.map { "\($0.name): \($0.value)" }.joined(separator: "\n") }
}

extension StringProtocol {
    @inlinable func equalsASCIICaseInsensitive<T: StringProtocol>(_ other: T) -> Bool {
        let a = self.utf8, b = other.utf8
        guard a.count == b.count else { return false }
        for (x, y) in zip(a, b) where x != y {
            let lx = (x >= 65 && x <= 90) ? x | 0x20 : x
            let ly = (y >= 65 && y <= 90) ? y | 0x20 : y
            if lx != ly { return false }
        }
        return true
    }
}

/// An HTTP protocol version such as 1.1.
public struct HTTPVersion: Sendable, Hashable, CustomStringConvertible {
    /// Major version digit.
    public var major: Int
    /// Minor version digit.
    public var minor: Int
    /// A version from its two digits.
    public init(major: Int, minor: Int) { self.major = major; self.minor = minor }
    /// HTTP/1.0.
    public static let http1_0 = HTTPVersion(major: 1, minor: 0)
    /// HTTP/1.1.
    public static let http1_1 = HTTPVersion(major: 1, minor: 1)
    public var description: String { "HTTP/\(major).\(minor)" }
}

/// A parsed request line and header block.
public struct HTTPRequestHead: Sendable, Equatable {
    /// The method token, e.g. "GET" (case-sensitive, as sent).
    public var method: String
    /// The raw request-target, e.g. "/v1/jobs/abc?wait=5".
    public var target: String
    /// The percent-decoded path without the query, e.g. "/v1/jobs/abc".
    public var path: String
    /// Decoded query parameters in order (`+` decodes to a space).
    public var query: [(name: String, value: String)]
    /// The request's protocol version.
    public var version: HTTPVersion
    /// The header fields in the order received.
    public var headers: HTTPHeaders

    /// A head from its parts; `path` and `query` are decoded from `target` (leniently: bad escapes stay as sent).
    public init(method: String, target: String, version: HTTPVersion = .http1_1, headers: HTTPHeaders = [:]) {
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers
        if let decoded = RequestTarget.decode(target) {
            path = decoded.path
            query = decoded.query
        } else {
            let raw = target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
            path = raw.first.map(String.init) ?? target
            query = []
        }
    }

    init(method: String, target: String, path: String, query: [(name: String, value: String)], version: HTTPVersion, headers: HTTPHeaders) {
        self.method = method; self.target = target; self.path = path; self.query = query
        self.version = version; self.headers = headers
    }

    /// The first value of query parameter `name`.
    public func queryValue(_ name: String) -> String? { query.first { $0.name == name }?.value }

    /// Whether the connection may stay open after this request (HTTP/1.1 unless `Connection: close`; HTTP/1.0 only with `Connection: keep-alive`).
    public var isKeepAlive: Bool {
        if headers.containsToken("Connection", "close") { return false }
        if version.major == 1 && version.minor >= 1 { return true }
        return headers.containsToken("Connection", "keep-alive")
    }

    public static func == (lhs: HTTPRequestHead, rhs: HTTPRequestHead) -> Bool {
        lhs.method == rhs.method && lhs.target == rhs.target && lhs.path == rhs.path
            && lhs.query.count == rhs.query.count
            && zip(lhs.query, rhs.query).allSatisfy { $0.name == $1.name && $0.value == $1.value }
            && lhs.version == rhs.version && lhs.headers == rhs.headers
    }
}

/// A request body: none, in memory, or spooled to a file (the server deletes the file after the response is sent).
public enum HTTPBody: Sendable, Equatable {
    /// No body.
    case empty
    /// A body held in memory.
    case bytes([UInt8])
    /// A body spooled to `path`, `length` bytes long.
    case file(path: String, length: Int)

    /// Body length in bytes.
    public var count: Int {
        switch self {
        case .empty: return 0
        case .bytes(let b): return b.count
        case .file(_, let length): return length
        }
    }

    /// The whole body in memory (reads the file for `.file`).
    public func readAll() throws -> [UInt8] {
        switch self {
        case .empty: return []
        case .bytes(let b): return b
        case .file(let path, _): return [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        }
    }
}

/// A complete request as handed to the responder.
public struct HTTPRequest: Sendable {
    /// Request line and headers.
    public var head: HTTPRequestHead
    /// The body, in memory or spooled to a file.
    public var body: HTTPBody
    /// The peer's address, "ip:port" ("[ip]:port" for IPv6).
    public var remoteAddress: String
    /// A request from its parts.
    public init(head: HTTPRequestHead, body: HTTPBody = .empty, remoteAddress: String = "") {
        self.head = head; self.body = body; self.remoteAddress = remoteAddress
    }
}

/// A response body: none, bytes, a file sent from disk (not deleted), or a stream sent with chunked encoding.
public enum ResponseBody: Sendable {
    /// No body (`Content-Length: 0`).
    case empty
    /// Bytes in memory.
    case bytes([UInt8])
    /// A file read from disk as it is sent; the file is left in place.
    case file(path: String)
    /// Chunks sent as they are produced with `Transfer-Encoding: chunked` (e.g. text/event-stream); empty chunks are skipped.
    case stream(AsyncStream<[UInt8]>)
}

/// A response: status, headers and body. The server adds `Date`, `Content-Length`/`Transfer-Encoding` and `Connection`.
public struct HTTPResponse: Sendable {
    /// The status code.
    public var status: Int
    /// Header fields; framing fields (`Content-Length`, `Transfer-Encoding`) are set by the server.
    public var headers: HTTPHeaders
    /// The body.
    public var body: ResponseBody

    /// A response from its parts.
    public init(status: Int, headers: HTTPHeaders = [:], body: ResponseBody = .empty) {
        self.status = status; self.headers = headers; self.body = body
    }

    /// An RFC 9457 `application/problem+json` response with type, title, status and detail.
    public static func problem(status: Int, title: String, detail: String, type: String = "about:blank") -> HTTPResponse {
        let json = "{\"type\":\(jsonString(type)),\"title\":\(jsonString(title)),\"status\":\(status),\"detail\":\(jsonString(detail))}"
        return HTTPResponse(status: status, headers: ["Content-Type": "application/problem+json"], body: .bytes(Array(json.utf8)))
    }

    /// An `application/json` response with the given encoded body.
    public static func json(_ data: [UInt8], status: Int = 200) -> HTTPResponse {
        HTTPResponse(status: status, headers: ["Content-Type": "application/json"], body: .bytes(data))
    }

    /// A `text/plain; charset=utf-8` response.
    public static func text(_ text: String, status: Int = 200) -> HTTPResponse {
        HTTPResponse(status: status, headers: ["Content-Type": "text/plain; charset=utf-8"], body: .bytes(Array(text.utf8)))
    }

    /// The standard reason phrase for `status` ("OK", "Not Found"...), or "Unknown".
    public static func reasonPhrase(_ status: Int) -> String { httpReasonPhrase(status) }
}

/// The application: decides early on a head, then answers complete requests.
public protocol HTTPResponder: Sendable {
    /// Called once the head is parsed, before any body byte is read and before `100 Continue`: return a response to refuse early (401, 404, 405, 413...), nil to go on.
    func preflight(_ head: HTTPRequestHead) -> HTTPResponse?
    /// Answers a complete request at once, on the connection's queue, when that needs no waiting
    /// (a health check, a poll of a job's state): nil hands it to `respond`. Keep it short.
    func respondImmediately(to request: HTTPRequest) -> HTTPResponse?
    /// Answers a complete request; runs in a Task off the socket queues and may suspend for as long as it needs.
    func respond(to request: HTTPRequest) async -> HTTPResponse
    /// Told about every error response the server produced itself (400, 408, 411, 413, 431, 501, 503, 505), for logs and metrics;
    /// `head` is nil when the head was not parsed. Called on a connection queue: keep it short.
    func serverRejected(status: Int, detail: String, head: HTTPRequestHead?, remoteAddress: String)
}

extension HTTPResponder {
    /// Default: accept every head.
    public func preflight(_ head: HTTPRequestHead) -> HTTPResponse? { nil }
    /// Default: every request goes to `respond`.
    public func respondImmediately(to request: HTTPRequest) -> HTTPResponse? { nil }
    /// Default: nothing.
    public func serverRejected(status: Int, detail: String, head: HTTPRequestHead?, remoteAddress: String) {}
}

/// PEM certificate (chain) and private key paths that turn on HTTPS.
public struct TLSConfiguration: Sendable {
    /// Path to a PEM certificate, optionally followed by its chain.
    public var certificatePath: String
    /// Path to the PEM private key.
    public var privateKeyPath: String
    /// A TLS configuration from two PEM paths.
    public init(certificatePath: String, privateKeyPath: String) {
        self.certificatePath = certificatePath; self.privateKeyPath = privateKeyPath
    }
}

/// Server settings, with the product defaults.
public struct HTTPServerConfiguration: Sendable {
    /// Address to bind ("0.0.0.0", "::", "127.0.0.1", a host name).
    public var host = "0.0.0.0"
    /// Port to bind; 0 picks an ephemeral port (see `HTTPServer.boundPort`).
    public var port = 8080
    /// Limit on request line + headers, bytes (431 beyond).
    public var maxHeaderBytes = 16 * 1024
    /// Limit on the number of header fields (431 beyond).
    public var maxHeaderCount = 100
    /// Limit on a request body, bytes (413 beyond).
    public var maxBodyBytes = 25 * 1024 * 1024
    /// Bodies larger than this are spooled to a file in `spoolDirectory`.
    public var bodyMemoryThreshold = 1024 * 1024
    /// Directory for spooled request bodies.
    public var spoolDirectory: String = NSTemporaryDirectory()
    /// Most open connections (also capped by the process's open-file limit, which `start()` raises
    /// to its hard limit). At the limit the oldest connection that is idle or still sending its
    /// request is closed to make room; only when every connection is being answered is a new one
    /// refused with 503.
    public var maxConnections = 10_000
    /// Most open connections from one client address; beyond it the address's oldest idle or
    /// incomplete connection is closed to make room (so one client cannot hold every slot).
    public var maxConnectionsPerAddress = 256
    /// A request body must keep arriving at this rate (bytes per second, averaged from its start,
    /// after a grace of `bodyTimeout`), so a trickle cannot hold a connection for hours (408); a
    /// response (other than an event stream) must be read at this rate after `idleTimeout` of grace.
    public var minBodyBytesPerSecond = 8 * 1024
    /// Seconds allowed to receive a whole request head (408 and close).
    public var headerTimeout: Double = 10
    /// Seconds a request body may stall between reads, and the grace before `minBodyBytesPerSecond` applies (408 and close).
    public var bodyTimeout: Double = 30
    /// Seconds an idle keep-alive connection is kept (then closed silently); also the limit on a stalled response write.
    public var idleTimeout: Double = 60
    /// HTTPS when set.
    public var tls: TLSConfiguration? = nil
    /// Threads watching the sockets (one epoll event loop each); connections are spread over them in turn.
    public var eventLoopThreads = ProcessInfo.processInfo.activeProcessorCount
    /// The defaults.
    public init() {}

    var parserLimits: HTTPParserLimits {
        HTTPParserLimits(maxHeaderBytes: maxHeaderBytes, maxHeaderCount: maxHeaderCount, maxBodyBytes: maxBodyBytes)
    }
}

/// `s` as a JSON string literal (quotes included), for problem bodies and other hand-built JSON.
public func jsonString(_ s: String) -> String {
    var out: [UInt8] = []
    out.reserveCapacity(s.utf8.count + 2)
    appendJSONString(s, to: &out)
    return String(decoding: out, as: UTF8.self)
}

/// Appends `s` as a JSON string literal (quotes included) to UTF-8 bytes. Bytes of multi-byte
/// characters are all 0x80 or above, so they pass through unescaped.
public func appendJSONString(_ s: String, to out: inout [UInt8]) {
    out.append(0x22)
    for b in s.utf8 {
        switch b {
        case 0x22, 0x5C: out.append(0x5C); out.append(b)
        case 0x0A: out.append(0x5C); out.append(0x6E)   // \n
        case 0x0D: out.append(0x5C); out.append(0x72)   // \r
        case 0x09: out.append(0x5C); out.append(0x74)   // \t
        case 0..<0x20:
            let hex: [UInt8] = Array("0123456789abcdef".utf8)
            out.append(contentsOf: [0x5C, 0x75, 0x30, 0x30, hex[Int(b >> 4)], hex[Int(b & 0xF)]])   // \u00XX
        default: out.append(b)
        }
    }
    out.append(0x22)
}

func httpReasonPhrase(_ status: Int) -> String {
    switch status {
    case 100: return "Continue"
    case 101: return "Switching Protocols"
    case 200: return "OK"
    case 201: return "Created"
    case 202: return "Accepted"
    case 204: return "No Content"
    case 206: return "Partial Content"
    case 301: return "Moved Permanently"
    case 302: return "Found"
    case 303: return "See Other"
    case 304: return "Not Modified"
    case 307: return "Temporary Redirect"
    case 308: return "Permanent Redirect"
    case 400: return "Bad Request"
    case 401: return "Unauthorized"
    case 403: return "Forbidden"
    case 404: return "Not Found"
    case 405: return "Method Not Allowed"
    case 406: return "Not Acceptable"
    case 408: return "Request Timeout"
    case 409: return "Conflict"
    case 410: return "Gone"
    case 411: return "Length Required"
    case 412: return "Precondition Failed"
    case 413: return "Content Too Large"
    case 414: return "URI Too Long"
    case 415: return "Unsupported Media Type"
    case 416: return "Range Not Satisfiable"
    case 417: return "Expectation Failed"
    case 422: return "Unprocessable Content"
    case 425: return "Too Early"
    case 426: return "Upgrade Required"
    case 428: return "Precondition Required"
    case 429: return "Too Many Requests"
    case 431: return "Request Header Fields Too Large"
    case 500: return "Internal Server Error"
    case 501: return "Not Implemented"
    case 502: return "Bad Gateway"
    case 503: return "Service Unavailable"
    case 507: return "Insufficient Storage"
    case 504: return "Gateway Timeout"
    case 505: return "HTTP Version Not Supported"
    default: return "Unknown"
    }
}
