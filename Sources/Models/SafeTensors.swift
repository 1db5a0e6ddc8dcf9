import Engine
import Foundation

/// Why a weights file could not be used; every message names the file part or tensor at fault.
public struct WeightsError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// A safetensors file: 8-byte little-endian header length, a JSON header, raw little-endian data.
/// The whole header is validated on load (offsets in bounds and consistent with shapes, dtype F32).
public struct SafeTensors: Sendable {
    /// One tensor's header entry.
    public struct Entry: Sendable, Equatable {
        public let dtype: String
        public let shape: [Int]
        public let offsets: Range<Int>
    }

    /// `__metadata__` string map.
    public let metadata: [String: String]
    /// How layers built from these weights run (`conv` hands it to each layer).
    public var engineOptions = EngineOptions()
    /// Entries by tensor name.
    public let entries: [String: Entry]
    private let bytes: [UInt8]
    private let dataStart: Int

    /// Reads and validates a file.
    public init(contentsOf path: String) throws {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw WeightsError("cannot read weights file \(path)")
        }
        try self.init(bytes: [UInt8](data), name: path)
    }

    /// Parses and validates bytes; `name` is used in messages.
    public init(bytes: [UInt8], name: String = "weights") throws {
        guard bytes.count >= 8 else { throw WeightsError("\(name): truncated file (\(bytes.count) bytes, no header length)") }
        let headerLength = Self.headerLength(bytes[0..<8])
        guard headerLength <= UInt64(bytes.count - 8), headerLength <= 100_000_000 else {
            throw WeightsError("\(name): truncated file (header length \(headerLength) exceeds the \(bytes.count - 8) bytes present)")
        }
        let headerEnd = 8 + Int(headerLength)
        let (metadata, entries) = try Self.parseHeader(bytes[8..<headerEnd], dataSize: bytes.count - headerEnd, name: name)
        self.metadata = metadata
        self.entries = entries
        self.bytes = bytes
        self.dataStart = headerEnd
    }

    /// The header's metadata and entries, validated against a data section of `dataSize` bytes.
    static func parseHeader(_ header: ArraySlice<UInt8>, dataSize: Int, name: String) throws -> ([String: String], [String: Entry]) {
        let json: Any
        do {
            json = try JSONSerialization.jsonObject(with: Data(header))
        } catch {
            throw WeightsError("\(name): header is not valid JSON")
        }
        guard let header = json as? [String: Any] else { throw WeightsError("\(name): header is not a JSON object") }
        var metadata: [String: String] = [:]
        var entries: [String: Entry] = [:]
        for (key, value) in header {
            if key == "__metadata__" {
                guard let m = value as? [String: Any] else { throw WeightsError("\(name): __metadata__ is not an object") }
                for (k, v) in m { metadata[k] = (v as? String) ?? "\(v)" }
                continue
            }
            guard let e = value as? [String: Any], let dtype = e["dtype"] as? String,
                  let shapeAny = e["shape"] as? [Any], let offAny = e["data_offsets"] as? [Any], offAny.count == 2 else {
                throw WeightsError("\(name): tensor \(key) has a malformed header entry")
            }
            let shape = try shapeAny.map { v -> Int in
                guard let n = Self.wholeNumber(v) else { throw WeightsError("\(name): tensor \(key): bad shape") }
                return n
            }
            let off = try offAny.map { v -> Int in
                guard let n = Self.wholeNumber(v) else { throw WeightsError("\(name): tensor \(key): bad data_offsets") }
                return n
            }
            guard dtype == "F32" else { throw WeightsError("tensor \(key): dtype \(dtype), expected F32") }
            guard off[0] <= off[1], off[1] <= dataSize else {
                throw WeightsError("tensor \(key): data_offsets [\(off[0]), \(off[1])] out of range (data is \(dataSize) bytes)")
            }
            // Shapes come from the file: a hostile one overflows Int if multiplied unchecked.
            var bytesNeeded = 4
            for n in shape {
                let (product, overflow) = bytesNeeded.multipliedReportingOverflow(by: n)
                guard !overflow else {
                    throw WeightsError("\(name): tensor \(key): shape \(shape) is too large to address")
                }
                bytesNeeded = product
            }
            guard off[1] - off[0] == bytesNeeded else {
                throw WeightsError("\(name): tensor \(key): shape \(shape) needs \(bytesNeeded) bytes, data_offsets give \(off[1] - off[0])")
            }
            entries[key] = Entry(dtype: dtype, shape: shape, offsets: off[0]..<off[1])
        }
        return (metadata, entries)
    }

    /// A non-negative integer from JSON, or nil: fractions and values beyond Int are refused
    /// rather than truncated.
    static func wholeNumber(_ value: Any) -> Int? {
        guard let number = value as? NSNumber else { return nil }
        let d = number.doubleValue
        guard d >= 0, d == d.rounded(), d < 9.2e18 else { return nil }
        return Int(number.int64Value)
    }

    /// The little-endian header length that opens a file.
    static func headerLength(_ prefix: ArraySlice<UInt8>) -> UInt64 {
        prefix.enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
    }

    /// The metadata and tensor shapes of a file, reading only its header (for listing models).
    public static func header(atPath path: String) throws -> (metadata: [String: String], entries: [String: Entry]) {
        guard let handle = FileHandle(forReadingAtPath: path) else { throw WeightsError("cannot read weights file \(path)") }
        defer { try? handle.close() }
        let prefix = [UInt8](handle.readData(ofLength: 8))
        guard prefix.count == 8 else { throw WeightsError("\(path): truncated file (no header length)") }
        let headerLength = Self.headerLength(prefix[0..<8])
        let fileSize = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
        guard headerLength <= UInt64(max(0, fileSize - 8)), headerLength <= 100_000_000 else {
            throw WeightsError("\(path): truncated file (header length \(headerLength) exceeds the file)")
        }
        let header = [UInt8](handle.readData(ofLength: Int(headerLength)))
        guard header.count == Int(headerLength) else { throw WeightsError("\(path): truncated header") }
        let parsed = try parseHeader(header[...], dataSize: fileSize - 8 - Int(headerLength), name: path)
        return (parsed.0, parsed.1)
    }

    /// The tensor's shape, or an error naming it when missing.
    public func shape(_ name: String) throws -> [Int] {
        guard let e = entries[name] else { throw WeightsError("missing tensor \(name)") }
        return e.shape
    }

    /// The tensor's values (little-endian float32), checked against an expected shape when given.
    public func floats(_ name: String, shape expected: [Int]? = nil) throws -> [Float] {
        guard let e = entries[name] else { throw WeightsError("missing tensor \(name)") }
        if let expected, expected != e.shape {
            throw WeightsError("tensor \(name): shape \(e.shape) expected \(expected)")
        }
        let n = e.offsets.count / 4
        return [Float](unsafeUninitializedCapacity: n) { buf, count in
            bytes.withUnsafeBytes { raw in
                let src = raw.baseAddress! + dataStart + e.offsets.lowerBound
                for i in 0..<n {
                    buf[i] = Float(bitPattern: UInt32(littleEndian: src.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)))
                }
            }
            count = n
        }
    }

    /// Serialises tensors (CHW/OIHW float32) with metadata, keys sorted, header padded to 8 bytes.
    public static func serialize(_ tensors: [(name: String, shape: [Int], values: [Float])], metadata: [String: String]) throws -> [UInt8] {
        var header: [String: Any] = [:]
        var offset = 0
        let sorted = tensors.sorted { $0.name < $1.name }
        for t in sorted {
            precondition(t.shape.reduce(1, *) == t.values.count, "shape/value mismatch for \(t.name)")
            header[t.name] = ["dtype": "F32", "shape": t.shape, "data_offsets": [offset, offset + 4 * t.values.count]]
            offset += 4 * t.values.count
        }
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var h = [UInt8](try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys, .withoutEscapingSlashes]))
        while h.count % 8 != 0 { h.append(0x20) }
        var out = [UInt8]()
        out.reserveCapacity(8 + h.count + offset)
        var len = UInt64(h.count).littleEndian
        withUnsafeBytes(of: &len) { out.append(contentsOf: $0) }
        out.append(contentsOf: h)
        for t in sorted {
            for v in t.values { var b = v.bitPattern.littleEndian; withUnsafeBytes(of: &b) { out.append(contentsOf: $0) } }
        }
        return out
    }
}

extension SafeTensors {
    /// Loads a convolution `prefix.weight` / `prefix.bias` with the expected geometry, naming the tensor on mismatch.
    func conv(_ prefix: String, inChannels: Int, outChannels: Int, kernel: Int, stride: Int = 1, groups: Int = 1,
              padding: Int? = nil, activation: Activation = .none) throws -> Conv2DLayer {
        let w = try floats(prefix + ".weight", shape: [outChannels, inChannels / groups, kernel, kernel])
        let b = try floats(prefix + ".bias", shape: [outChannels])
        return Conv2DLayer(name: prefix, conv: Conv2D(weight: w, bias: b, inChannels: inChannels, outChannels: outChannels,
                                                      kernel: kernel, stride: stride, groups: groups, padding: padding,
                                                      activation: activation, options: engineOptions))
    }
}
