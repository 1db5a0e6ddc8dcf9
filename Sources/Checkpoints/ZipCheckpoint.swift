/// The zip format of `torch.save` (torch >= 1.6): `<dir>/data.pkl` holds the object with
/// persistent ids `('storage', storage_type, key, location, numel)`; each storage's raw
/// little-endian elements are the stored entry `<dir>/data/<key>`.
enum ZipCheckpoint {
    static func read(_ bytes: [UInt8], name: String) throws -> [(String, TorchTensor)] {
        let zip = try ZipArchive(bytes, name: name)
        // The directory is the saved file's stem, so find data.pkl wherever it is (one level deep).
        let pickles = zip.entries.filter { $0.name.hasSuffix("/data.pkl") && $0.name.split(separator: "/").count == 2 }
        guard pickles.count == 1, let pkl = pickles.first else {
            throw CheckpointError("\(name): not a PyTorch checkpoint (the zip archive has no single <dir>/data.pkl)")
        }
        let dir = String(pkl.name.dropLast("data.pkl".count))
        var byName: [String: ZipArchive.Entry] = [:]
        for e in zip.entries { byName[e.name] = e }
        if let order = byName[dir + "byteorder"] {
            let r = try zip.dataRange(of: order)
            guard String(decoding: bytes[r], as: UTF8.self) == "little" else {
                throw CheckpointError("\(name): big-endian checkpoints are not supported")
            }
        }
        let persistentLoad: Unpickler.PersistentLoad = { pid in
            guard case .tuple(let t) = pid, t.items.count == 5, case .string("storage") = t.items[0],
                  case .global(.storage(let dtype)) = t.items[1], case .string(let key) = t.items[2],
                  case .int(let numel) = t.items[4], numel >= 0 else {
                throw CheckpointError("\(name): malformed storage reference in data.pkl")
            }
            return .storage(StorageRef(key: key, dtype: dtype, viewOffset: 0, count: numel))
        }
        let pklRange = try zip.dataRange(of: pkl)
        var cursor = ByteCursor(bytes, from: pklRange.lowerBound, end: pklRange.upperBound, name: name + " data.pkl")
        let refs = try Unpickler.load(&cursor, persistentLoad: persistentLoad) { try StateDict.tensors(in: $0, name: name) }
        var ranges: [String: Range<Int>] = [:]
        return try refs.map { key, ref in
            let storageKey = ref.storage.key
            if ranges[storageKey] == nil {
                guard let e = byName[dir + "data/" + storageKey] else {
                    throw CheckpointError("\(name): tensor \(key): storage entry \(dir)data/\(storageKey) is missing")
                }
                ranges[storageKey] = try zip.dataRange(of: e)
            }
            let r = ranges[storageKey]!
            guard ref.storage.count <= r.count / ref.storage.dtype.elementSize else {
                throw CheckpointError("\(name): tensor \(key): storage \(storageKey) holds \(r.count) bytes, fewer than its \(ref.storage.count) elements need")
            }
            return (key, try TorchTensor(file: name, name: key, ref: ref, bytes: bytes, base: r.lowerBound, available: ref.storage.count))
        }
    }
}
