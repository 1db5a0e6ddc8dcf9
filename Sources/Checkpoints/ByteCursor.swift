/// A bounds-checked little-endian reader over a byte array: every read that would run past the end
/// throws instead of trapping, because checkpoint files are untrusted input.
struct ByteCursor {
    let bytes: [UInt8]
    /// Where reading stops (exclusive); a cursor can be limited to one zip entry or pickle.
    let end: Int
    var position: Int
    /// Names the input in error messages.
    let name: String

    init(_ bytes: [UInt8], from start: Int = 0, end: Int? = nil, name: String) {
        self.bytes = bytes
        self.end = min(end ?? bytes.count, bytes.count)
        self.position = min(max(0, start), self.end)
        self.name = name
    }

    var remaining: Int { end - position }
    var isAtEnd: Bool { position >= end }

    func truncated(_ what: String) -> CheckpointError {
        CheckpointError("\(name): truncated file (\(what) at byte \(position) runs past the end)")
    }

    mutating func byte(_ what: String = "a byte") throws -> UInt8 {
        guard position < end else { throw truncated(what) }
        defer { position += 1 }
        return bytes[position]
    }

    /// The next `count` bytes as a range into `bytes`, without copying.
    mutating func range(_ count: Int, _ what: String) throws -> Range<Int> {
        guard count >= 0, count <= remaining else { throw truncated(what) }
        defer { position += count }
        return position..<(position + count)
    }

    mutating func take(_ count: Int, _ what: String) throws -> ArraySlice<UInt8> {
        bytes[try range(count, what)]
    }

    mutating func skip(_ count: Int, _ what: String) throws { _ = try range(count, what) }

    /// An unsigned little-endian integer of `width` bytes (1...8).
    mutating func uint(_ width: Int, _ what: String) throws -> UInt64 {
        let r = try range(width, what)
        var v: UInt64 = 0
        for (i, b) in bytes[r].enumerated() { v |= UInt64(b) << (8 * UInt64(i)) }
        return v
    }

    mutating func u16(_ what: String) throws -> Int { Int(try uint(2, what)) }
    mutating func u32(_ what: String) throws -> Int { Int(try uint(4, what)) }

    /// A little-endian UInt64 that must fit in Int (sizes and offsets from the file).
    mutating func u64(_ what: String) throws -> Int {
        let v = try uint(8, what)
        guard v <= UInt64(Int.max) else { throw CheckpointError("\(name): \(what) \(v) is too large") }
        return Int(v)
    }
}

/// Reads a little-endian unsigned integer at `offset` of `bytes`, or nil when out of bounds.
func readLE(_ bytes: [UInt8], at offset: Int, width: Int) -> Int? {
    guard offset >= 0, width <= 8, offset <= bytes.count - width else { return nil }
    var v: UInt64 = 0
    for i in 0..<width { v |= UInt64(bytes[offset + i]) << (8 * UInt64(i)) }
    return v <= UInt64(Int.max) ? Int(v) : nil
}
