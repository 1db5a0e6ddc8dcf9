import Foundation

/// A client-side failure (connect, timeout, malformed answer).
public struct ClientError: Error, CustomStringConvertible {
    public var description: String
    public init(_ d: String) { description = d }
}

/// Response header fields as received, in order; names compare case-insensitively.
public struct ResponseHeaders: Sequence, CustomStringConvertible {
    private var fields: [(name: String, value: String)] = []

    /// An empty list.
    public init() {}

    /// The first value for `name`.
    public subscript(name: String) -> String? {
        fields.first { $0.name.caseInsensitiveCompare(name) == .orderedSame }?.value
    }

    /// Every value for `name`, in order.
    public func values(_ name: String) -> [String] {
        fields.filter { $0.name.caseInsensitiveCompare(name) == .orderedSame }.map(\.value)
    }

    /// Whether a field named `name` was received.
    public func contains(_ name: String) -> Bool { self[name] != nil }

    /// Number of fields (repeated names counted separately).
    public var count: Int { fields.count }

    /// Appends a field.
    public mutating func add(_ name: String, _ value: String) { fields.append((name, value)) }

    public func makeIterator() -> IndexingIterator<[(name: String, value: String)]> { fields.makeIterator() }

    public var description: String { fields.map { "\($0.name): \($0.value)" }.joined(separator: "\n") }
}

/// A response as read off the wire.
public struct ClientResponse: CustomStringConvertible {
    public var status: Int
    public var headers: ResponseHeaders
    public var body: [UInt8]
    /// The body as UTF-8 text.
    public var text: String { String(decoding: body, as: UTF8.self) }
    /// The body parsed as a JSON object (nil when it is not one).
    public var json: [String: Any]? { (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any] }
    public var description: String { "\(status) \(headers["Content-Type"] ?? "") \(text.prefix(400))" }
}
