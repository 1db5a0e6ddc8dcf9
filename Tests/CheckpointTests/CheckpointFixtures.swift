import Foundation

/// Hand-assembled pickle bytes: just the opcodes `torch.save` emits for a state dict, so tests
/// can build checkpoints (and hostile variants) without Python or torch.
struct PickleWriter {
    var bytes: [UInt8] = [0x80, 0x02] // PROTO 2

    mutating func op(_ b: UInt8...) { bytes += b }
    mutating func le(_ v: UInt64, _ width: Int) { for i in 0..<width { bytes.append(UInt8(truncatingIfNeeded: v >> (8 * UInt64(i)))) } }
    mutating func string(_ s: String) { op(0x58); le(UInt64(s.utf8.count), 4); bytes += Array(s.utf8) }
    mutating func int(_ n: Int) {
        if n >= 0 && n < 256 { op(0x4B, UInt8(n)) } else { op(0x8A, 8); le(UInt64(bitPattern: Int64(n)), 8) } // BININT1 / LONG1
    }
    mutating func global(_ module: String, _ name: String) { op(0x63); bytes += Array("\(module)\n\(name)\n".utf8) }
    mutating func mark() { op(0x28) }
    mutating func tuple() { op(0x74) }
    mutating func ints(_ values: [Int]) { mark(); values.forEach { int($0) }; tuple() }
    mutating func stop() { op(0x2E) }

    /// `_rebuild_tensor_v2((persistent id), offset, size, stride, False, OrderedDict())`.
    mutating func tensor(storageKey: String, storageType: String, numel: Int, offset: Int, shape: [Int], strides: [Int], legacy: Bool) {
        global("torch._utils", "_rebuild_tensor_v2")
        mark()
        mark(); string("storage"); global("torch", storageType); string(storageKey); string("cpu"); int(numel)
        if legacy { op(0x4E) } // NONE: no view
        tuple()
        op(0x51) // BINPERSID
        int(offset); ints(shape); ints(strides); op(0x89) // NEWFALSE
        global("collections", "OrderedDict"); op(0x29, 0x52) // EMPTY_TUPLE REDUCE
        tuple()
        op(0x52) // REDUCE
    }
}

/// A tensor for a test checkpoint: its view (`offset`, `strides`) into storage `key`.
struct FixtureTensor {
    var name: String
    var shape: [Int]
    var strides: [Int]
    var offset = 0
    var key: String
    var storageType = "FloatStorage"
    /// Elements the persistent id declares (default: the storage's float count).
    var numel: Int?

    /// A contiguous tensor with its own storage.
    init(_ name: String, _ shape: [Int], key: String? = nil) {
        self.name = name
        self.shape = shape
        var s = [Int](repeating: 1, count: shape.count)
        for i in stride(from: shape.count - 2, through: 0, by: -1) { s[i] = s[i + 1] * shape[i + 1] }
        strides = s
        self.key = key ?? name
    }
}

/// Builds small checkpoints in either torch.save format.
enum FixtureCheckpoint {
    /// The state-dict pickle; `wrap` nests it in `{wrap: state_dict, "epoch": 3}`.
    static func statePickle(_ tensors: [FixtureTensor], storages: [String: [Float]], legacy: Bool, wrap: String? = nil) -> [UInt8] {
        var p = PickleWriter()
        if wrap != nil { p.op(0x7D); p.mark() } // EMPTY_DICT MARK
        if let wrap { p.string(wrap) }
        p.global("collections", "OrderedDict"); p.op(0x29, 0x52)
        p.mark()
        for t in tensors {
            p.string(t.name)
            p.tensor(storageKey: t.key, storageType: t.storageType, numel: t.numel ?? storages[t.key]!.count, offset: t.offset,
                     shape: t.shape, strides: t.strides, legacy: legacy)
        }
        p.op(0x75) // SETITEMS
        if wrap != nil { p.string("epoch"); p.int(3); p.op(0x75) }
        p.stop()
        return p.bytes
    }

    static func floatBytes(_ values: [Float]) -> [UInt8] {
        values.flatMap { v -> [UInt8] in let b = v.bitPattern; return (0..<4).map { UInt8(truncatingIfNeeded: b >> (8 * UInt32($0))) } }
    }

    /// Storage keys in first-use order.
    static func keys(_ tensors: [FixtureTensor]) -> [String] {
        var seen = Set<String>()
        return tensors.map(\.key).filter { seen.insert($0).inserted }
    }

    /// The legacy format: magic, protocol, sys info, state dict, key list, then count-prefixed storages.
    static func legacy(_ tensors: [FixtureTensor], storages: [String: [Float]], wrap: String? = nil) -> [UInt8] {
        var out: [UInt8] = [0x80, 0x02, 0x8A, 0x0A, 0x6C, 0xFC, 0x9C, 0x46, 0xF9, 0x20, 0x6A, 0xA8, 0x50, 0x19, 0x2E]
        var proto = PickleWriter(); proto.op(0x4D); proto.le(1001, 2); proto.stop()
        var info = PickleWriter(); info.op(0x7D); info.mark(); info.string("little_endian"); info.op(0x88); info.op(0x75); info.stop()
        out += proto.bytes + info.bytes + statePickle(tensors, storages: storages, legacy: true, wrap: wrap)
        let keys = keys(tensors)
        var list = PickleWriter(); list.op(0x5D); list.mark(); keys.forEach { list.string($0) }; list.op(0x65); list.stop()
        out += list.bytes
        for k in keys {
            var count = PickleWriter(); count.bytes = []; count.le(UInt64(storages[k]!.count), 8)
            out += count.bytes + floatBytes(storages[k]!)
        }
        return out
    }

    /// The zip format: `archive/data.pkl`, `archive/byteorder`, `archive/data/<key>`, all stored.
    static func zip(_ tensors: [FixtureTensor], storages: [String: [Float]], wrap: String? = nil) -> [UInt8] {
        var entries: [(String, [UInt8])] = [("archive/data.pkl", statePickle(tensors, storages: storages, legacy: false, wrap: wrap)),
                                            ("archive/byteorder", Array("little".utf8))]
        for k in keys(tensors) { entries.append(("archive/data/\(k)", floatBytes(storages[k]!))) }
        return storedZip(entries)
    }

    /// A zip archive of stored (uncompressed) entries.
    static func storedZip(_ entries: [(String, [UInt8])]) -> [UInt8] {
        var out: [UInt8] = [], central: [UInt8] = []
        func le(_ v: Int, _ width: Int, into a: inout [UInt8]) { for i in 0..<width { a.append(UInt8(truncatingIfNeeded: v >> (8 * i))) } }
        for (name, data) in entries {
            let offset = out.count, crc = Int(crc32(data)), n = Array(name.utf8)
            le(0x0403_4B50, 4, into: &out); le(20, 2, into: &out); le(0, 2, into: &out); le(0, 2, into: &out); le(0, 4, into: &out)
            le(crc, 4, into: &out); le(data.count, 4, into: &out); le(data.count, 4, into: &out); le(n.count, 2, into: &out); le(0, 2, into: &out)
            out += n + data
            le(0x0201_4B50, 4, into: &central); le(20, 2, into: &central); le(20, 2, into: &central); le(0, 2, into: &central); le(0, 2, into: &central)
            le(0, 4, into: &central); le(crc, 4, into: &central); le(data.count, 4, into: &central); le(data.count, 4, into: &central)
            le(n.count, 2, into: &central); le(0, 2, into: &central); le(0, 2, into: &central); le(0, 2, into: &central); le(0, 2, into: &central)
            le(0, 4, into: &central); le(offset, 4, into: &central)
            central += n
        }
        let cdOffset = out.count
        out += central
        le(0x0605_4B50, 4, into: &out); le(0, 2, into: &out); le(0, 2, into: &out); le(entries.count, 2, into: &out); le(entries.count, 2, into: &out)
        le(central.count, 4, into: &out); le(cdOffset, 4, into: &out); le(0, 2, into: &out)
        return out
    }

    static func crc32(_ data: [UInt8]) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in data {
            c ^= UInt32(b)
            for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        }
        return ~c
    }
}
