#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// How a response body is delimited on the wire.
enum ResponseFraming: Equatable {
    /// `Content-Length: n`.
    case length(Int)
    /// `Transfer-Encoding: chunked` (a stream on HTTP/1.1).
    case chunked
    /// Neither: the body ends when the connection does (a stream on HTTP/1.0), or there is none (204, 304, 1xx).
    case none
}

/// The status line and header block of a response, written straight into bytes: the framing and
/// `Connection` fields are the server's (the responder's are dropped), a `Date` is added unless
/// the responder set one, header names that are not tokens are dropped, and CR, LF and NUL in
/// values become spaces so a value cannot split the header block.
enum ResponseHead {
    /// Appends the head to `out`; returns the names of the headers dropped for invalid names.
    static func encode(status: Int, headers: HTTPHeaders, framing: ResponseFraming, connection: String?,
                       date: inout HTTPDateCache, into out: inout [UInt8]) -> [String] {
        var dropped: [String] = []
        out.append(contentsOf: statusLine(status))
        var hasDate = false
        for (name, value) in headers {
            if name.equalsASCIICaseInsensitive("content-length") || name.equalsASCIICaseInsensitive("transfer-encoding")
                || name.equalsASCIICaseInsensitive("connection") { continue }
            guard !name.isEmpty, name.utf8.allSatisfy(isTokenChar) else {
                dropped.append(name)
                continue
            }
            if !hasDate && name.equalsASCIICaseInsensitive("date") { hasDate = true }
            out.append(contentsOf: name.utf8)
            out.append(0x3A)   // ':'
            out.append(0x20)
            for b in value.utf8 { out.append(b == 0x0D || b == 0x0A || b == 0 ? 0x20 : b) }
            out.append(0x0D)
            out.append(0x0A)
        }
        if !hasDate {
            out.append(contentsOf: "Date: ".utf8)
            out.append(contentsOf: date.current())
            out.append(0x0D)
            out.append(0x0A)
        }
        switch framing {
        case .length(let n):
            out.append(contentsOf: "Content-Length: ".utf8)
            appendDecimal(n, to: &out)
            out.append(0x0D)
            out.append(0x0A)
        case .chunked:
            out.append(contentsOf: "Transfer-Encoding: chunked\r\n".utf8)
        case .none:
            break
        }
        if let connection {
            out.append(contentsOf: "Connection: ".utf8)
            out.append(contentsOf: connection.utf8)
            out.append(0x0D)
            out.append(0x0A)
        }
        out.append(0x0D)
        out.append(0x0A)
        return dropped
    }

    /// "HTTP/1.1 200 OK\r\n": made once for the common statuses, on demand for the others.
    static func statusLine(_ status: Int) -> [UInt8] {
        if let line = common[status] { return line }
        return Array("HTTP/1.1 \(status) \(httpReasonPhrase(status))\r\n".utf8)
    }

    private static let common: [Int: [UInt8]] = {
        var lines: [Int: [UInt8]] = [:]
        for status in [200, 201, 202, 204, 206, 304, 400, 401, 404, 405, 409, 410, 413, 415, 422, 429, 500, 503] {
            lines[status] = Array("HTTP/1.1 \(status) \(httpReasonPhrase(status))\r\n".utf8)
        }
        return lines
    }()

    static func appendDecimal(_ value: Int, to out: inout [UInt8]) { out.append(contentsOf: String(value).utf8) }
}

/// The `Date` header value, formatted at most once a second (one per connection, so no lock).
struct HTTPDateCache {
    private var second: time_t = -1
    private var value: [UInt8] = []

    /// The current time as an IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT").
    mutating func current() -> [UInt8] {
        let now = time(nil)
        if now != second {
            second = now
            value = Array(httpDate(now).utf8)
        }
        return value
    }
}

/// `time` as an IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT"), locale-independent.
func httpDate(_ time: time_t) -> String {
    var t = time
    var v = tm()
    gmtime_r(&t, &v)
    let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
    let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
    func two(_ n: Int32) -> String { n < 10 ? "0\(n)" : "\(n)" }
    return "\(days[Int(v.tm_wday)]), \(two(v.tm_mday)) \(months[Int(v.tm_mon)]) \(v.tm_year + 1900) \(two(v.tm_hour)):\(two(v.tm_min)):\(two(v.tm_sec)) GMT"
}
