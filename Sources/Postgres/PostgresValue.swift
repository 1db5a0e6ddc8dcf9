import Foundation

/// A statement parameter: sent as text with a type the server checks, or as raw binary bytea.
public enum PostgresValue: Sendable, Equatable {
    /// Text of unspecified type: the server infers it from context (text, uuid, jsonb, timestamptz...).
    case text(String)
    /// Raw bytes, sent in binary as bytea (zero bytes and all).
    case bytes([UInt8])
    /// A bigint (int8); assignable to integer columns.
    case int(Int64)
    /// A double precision (float8).
    case double(Double)
    /// A boolean.
    case bool(Bool)
    /// A timestamptz, sent in UTC with microseconds.
    case date(Date)

    /// Convenience for `Int` values.
    public static func int(_ value: Int) -> PostgresValue { .int(Int64(value)) }
}

/// PostgreSQL type OIDs this client names when it sends parameters.
enum PostgresType {
    static let unknown: UInt32 = 0
    static let bool: UInt32 = 16
    static let bytea: UInt32 = 17
    static let int8: UInt32 = 20
    static let float8: UInt32 = 701
    static let timestamptz: UInt32 = 1184
}

/// Parameters laid out in one buffer so every value has a stable address for one libpq call.
struct EncodedParameters {
    private var storage: [UInt8] = []
    private var offsets: [Int] = []
    private(set) var types: [UInt32] = []
    private(set) var lengths: [Int32] = []
    private(set) var formats: [Int32] = []
    private var isNull: [Bool] = []

    /// Lays out `values`; text containing a NUL character throws, since PostgreSQL text cannot hold one
    /// and libpq would silently cut the value there.
    init(_ values: [PostgresValue?]) throws {
        storage.reserveCapacity(values.reduce(0) { $0 + Self.estimatedSize($1) })
        for value in values {
            if case .text(let text)? = value, text.utf8.contains(0) {
                throw PostgresError(kind: .usage, message: "a text parameter contains a NUL character")
            }
            append(value)
        }
    }

    var count: Int32 { Int32(offsets.count) }

    private static func estimatedSize(_ value: PostgresValue?) -> Int {
        switch value {
        case .bytes(let bytes)?: return bytes.count
        case .text(let text)?: return text.utf8.count + 1
        default: return 32
        }
    }

    private mutating func append(_ value: PostgresValue?) {
        offsets.append(storage.count)
        guard let value else {
            isNull.append(true)
            types.append(PostgresType.unknown)
            lengths.append(0)
            formats.append(0)
            return
        }
        isNull.append(false)
        switch value {
        case .bytes(let bytes):
            storage.append(contentsOf: bytes)
            storage.append(0) // keeps an empty value's address inside the buffer
            types.append(PostgresType.bytea)
            lengths.append(Int32(bytes.count))
            formats.append(1)
            return
        case .text(let text): appendText(text, type: PostgresType.unknown)
        case .int(let number): appendText(String(number), type: PostgresType.int8)
        case .double(let number): appendText(Self.format(number), type: PostgresType.float8)
        case .bool(let flag): appendText(flag ? "t" : "f", type: PostgresType.bool)
        case .date(let date): appendText(PostgresTimestamp.format(date), type: PostgresType.timestamptz)
        }
    }

    private mutating func appendText(_ text: String, type: UInt32) {
        storage.append(contentsOf: text.utf8)
        storage.append(0)
        types.append(type)
        lengths.append(0)
        formats.append(0)
    }

    /// Doubles in the spelling PostgreSQL reads back exactly, including the special values.
    private static func format(_ number: Double) -> String {
        if number.isNaN { return "NaN" }
        if number.isInfinite { return number < 0 ? "-Infinity" : "Infinity" }
        return "\(number)"
    }

    /// Calls `body` with libpq's parallel arrays (values, lengths, formats, types) valid for its duration.
    func withArrays<T>(_ body: (UnsafePointer<UnsafePointer<CChar>?>?, UnsafePointer<Int32>?,
                               UnsafePointer<Int32>?, UnsafePointer<UInt32>?) throws -> T) rethrows -> T {
        try storage.withUnsafeBytes { raw in
            let base = raw.baseAddress?.assumingMemoryBound(to: CChar.self)
            let pointers: [UnsafePointer<CChar>?] = offsets.indices.map { index in
                isNull[index] ? nil : base.map { UnsafePointer($0 + offsets[index]) }
            }
            return try pointers.withUnsafeBufferPointer { values in
                try lengths.withUnsafeBufferPointer { lengths in
                    try formats.withUnsafeBufferPointer { formats in
                        try types.withUnsafeBufferPointer { types in
                            try body(values.baseAddress, lengths.baseAddress, formats.baseAddress, types.baseAddress)
                        }
                    }
                }
            }
        }
    }
}
