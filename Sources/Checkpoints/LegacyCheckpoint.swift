/// The legacy `torch.save` format (torch < 1.6): five pickles in a row (magic number, protocol
/// version, system info, the object with persistent ids for storages, the storage keys), then
/// each storage's data in key order, prefixed by its element count as a little-endian int64.
enum LegacyCheckpoint {
    /// torch's MAGIC_NUMBER 0x1950a86a20f9469cfc6c as the little-endian bytes of its LONG1.
    static let magic: [UInt8] = [0x6C, 0xFC, 0x9C, 0x46, 0xF9, 0x20, 0x6A, 0xA8, 0x50, 0x19]
    static let protocolVersion = 1001

    static func read(_ bytes: [UInt8], name: String) throws -> [(String, TorchTensor)] {
        var cursor = ByteCursor(bytes, name: name)
        let magicOK = try Unpickler.load(&cursor) { v -> Bool in
            if case .bigInt(let b) = v { return b == magic }
            return false
        }
        guard magicOK else { throw CheckpointError("\(name): not a PyTorch checkpoint (bad magic number)") }
        let version = try Unpickler.load(&cursor) { v -> Int? in if case .int(let n) = v { return n } else { return nil } }
        guard version == protocolVersion else {
            throw CheckpointError("\(name): unsupported legacy protocol version \(version.map(String.init) ?? "?") (expected \(protocolVersion))")
        }
        let littleEndian = try Unpickler.load(&cursor) { v -> Bool in
            guard case .dict(let d) = v else { return false }
            if case .bool(false)? = d.value(forKey: "little_endian") { return false }
            return true
        }
        guard littleEndian else { throw CheckpointError("\(name): big-endian checkpoints are not supported") }

        // Storages are only known by key until the data section is reached: remember each key's type.
        var dtypes: [String: TorchDType] = [:]
        let persistentLoad: Unpickler.PersistentLoad = { pid in
            // ('storage', storage_type, root_key, location, root_size, view_metadata)
            guard case .tuple(let t) = pid, t.items.count == 6, case .string("storage") = t.items[0],
                  case .global(.storage(let dtype)) = t.items[1], case .string(let key) = t.items[2],
                  case .int(let size) = t.items[4], size >= 0 else {
                throw CheckpointError("\(name): malformed storage reference in the pickle")
            }
            if let known = dtypes[key], known != dtype { throw CheckpointError("\(name): storage \(key) has two types") }
            dtypes[key] = dtype
            switch t.items[5] {
            case .none:
                return .storage(StorageRef(key: key, dtype: dtype, viewOffset: 0, count: size))
            case .tuple(let view):
                // A view into the root storage: (view_key, offset, view_size), in elements.
                guard view.items.count == 3, case .int(let offset) = view.items[1], case .int(let viewSize) = view.items[2],
                      offset >= 0, viewSize >= 0, offset <= size, viewSize <= size - offset else {
                    throw CheckpointError("\(name): malformed storage view of \(key)")
                }
                return .storage(StorageRef(key: key, dtype: dtype, viewOffset: offset, count: viewSize))
            default:
                throw CheckpointError("\(name): malformed storage view of \(key)")
            }
        }
        let refs = try Unpickler.load(&cursor, persistentLoad: persistentLoad) { try StateDict.tensors(in: $0, name: name) }
        let keys = try Unpickler.load(&cursor) { v -> [String] in
            guard case .list(let l) = v else { throw CheckpointError("\(name): storage key list is not a list") }
            return try l.items.map { item in
                guard case .string(let s) = item else { throw CheckpointError("\(name): storage key is not a string") }
                return s
            }
        }

        // The data section: for each key, an int64 element count, then the elements.
        var storages: [String: (base: Int, count: Int)] = [:]
        for key in keys {
            guard let dtype = dtypes[key] else { throw CheckpointError("\(name): storage \(key) is listed but not referenced") }
            let count = try cursor.u64("element count of storage \(key)")
            let (size, overflow) = count.multipliedReportingOverflow(by: dtype.elementSize)
            guard !overflow else { throw CheckpointError("\(name): storage \(key) declares \(count) elements, too many to address") }
            let r = try cursor.range(size, "data of storage \(key) (\(count) elements)")
            storages[key] = (r.lowerBound, count)
        }
        return try refs.map { key, ref in
            guard let s = storages[ref.storage.key] else { throw CheckpointError("\(name): tensor \(key): its storage \(ref.storage.key) has no data") }
            guard ref.storage.viewOffset <= s.count, ref.storage.count <= s.count - ref.storage.viewOffset else {
                throw CheckpointError("\(name): tensor \(key): storage \(ref.storage.key) holds \(s.count) elements, fewer than its reference declares")
            }
            let base = s.base + ref.storage.viewOffset * ref.storage.dtype.elementSize
            return (key, try TorchTensor(file: name, name: key, ref: ref, bytes: bytes, base: base, available: ref.storage.count))
        }
    }
}
