import Foundation
import HTTPCore

/// A JSON value with ordered object members, so answers read in a stable, documented order.
public enum JSONValue: Sendable, Equatable, ExpressibleByStringLiteral, ExpressibleByIntegerLiteral,
    ExpressibleByBooleanLiteral, ExpressibleByNilLiteral {
    case null
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object([(String, JSONValue)])

    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int) { self = .int(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(nilLiteral: ()) { self = .null }

    /// `.string(s)` or `.null`.
    public static func optional(_ s: String?) -> JSONValue { s.map(JSONValue.string) ?? .null }

    public static func == (a: JSONValue, b: JSONValue) -> Bool { a.serialized() == b.serialized() }

    /// Compact UTF-8 JSON.
    public func serialized() -> String {
        var out: [UInt8] = []
        write(&out)
        return String(decoding: out, as: UTF8.self)
    }

    /// Compact UTF-8 JSON bytes with a trailing newline (friendlier on a terminal with curl).
    public var bytes: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(256)
        write(&out)
        out.append(0x0A)
        return out
    }

    /// Appends the compact encoding, byte by byte: no intermediate strings.
    private func write(_ out: inout [UInt8]) {
        switch self {
        case .null: out.append(contentsOf: "null".utf8)
        case .bool(let b): out.append(contentsOf: (b ? "true" : "false").utf8)
        case .int(let i): out.append(contentsOf: String(i).utf8)
        case .double(let d): out.append(contentsOf: Self.number(d).utf8)
        case .string(let s): appendJSONString(s, to: &out)
        case .array(let items):
            out.append(0x5B)   // [
            for (i, v) in items.enumerated() {
                if i > 0 { out.append(0x2C) }
                v.write(&out)
            }
            out.append(0x5D)
        case .object(let members):
            out.append(0x7B)   // {
            for (i, (k, v)) in members.enumerated() {
                if i > 0 { out.append(0x2C) }
                appendJSONString(k, to: &out)
                out.append(0x3A)
                v.write(&out)
            }
            out.append(0x7D)
        }
    }

    /// A JSON number: integers without a fraction, others in the shortest round-trip form.
    static func number(_ d: Double) -> String {
        guard d.isFinite else { return "null" }
        if d == d.rounded(), abs(d) < 1e15 { return String(Int64(d)) }
        return "\(d)"
    }

    /// A JSON string literal.
    public static func quote(_ s: String) -> String { jsonString(s) }
}

/// An error answer: RFC 9457 problem details. Thrown inside handlers, rendered by the router.
public struct APIError: Error, Sendable, CustomStringConvertible {
    public var status: Int
    public var title: String
    public var detail: String
    public var headers: HTTPHeaders
    public var extra: [(String, JSONValue)]

    public init(_ status: Int, _ detail: String, title: String? = nil, headers: HTTPHeaders = [:], extra: [(String, JSONValue)] = []) {
        self.status = status
        self.title = title ?? HTTPResponse.reasonPhrase(status)
        self.detail = detail
        self.headers = headers
        self.extra = extra
    }

    /// A failed write or read of the server's storage: 507 on a full disk, else 500, naming no path.
    public init(storage error: Error) {
        let rejection = HTTPParserError.storageFailure(error)
        self.init(rejection.status, rejection.detail, headers: rejection.status == 507 ? ["Retry-After": "60"] : [:])
    }

    public var description: String { "\(status) \(title): \(detail)" }

    /// The `application/problem+json` response.
    public var response: HTTPResponse {
        var members: [(String, JSONValue)] = [("type", "about:blank"), ("title", .string(title)), ("status", .int(status)),
                                               ("detail", .string(detail))]
        members += extra
        var h = headers
        h["Content-Type"] = "application/problem+json"
        h["Cache-Control"] = "no-store"
        return HTTPResponse(status: status, headers: h, body: .bytes(JSONValue.object(members).bytes))
    }
}

extension HTTPResponse {
    /// An `application/json` answer.
    static func json(_ value: JSONValue, status: Int = 200, headers: HTTPHeaders = [:]) -> HTTPResponse {
        json(encoded: value.bytes, status: status, headers: headers)
    }

    /// An `application/json` answer whose body is already encoded.
    static func json(encoded body: [UInt8], status: Int = 200, headers: HTTPHeaders = [:]) -> HTTPResponse {
        var h = headers
        h["Content-Type"] = "application/json"
        if !h.contains("Cache-Control") { h["Cache-Control"] = "no-store" }
        return HTTPResponse(status: status, headers: h, body: .bytes(body))
    }
}
