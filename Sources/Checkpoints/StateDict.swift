/// Finds the state dict in an unpickled checkpoint: the object itself when it maps names to tensors,
/// else the one nested dict that does (training scripts wrap it: `{"model": ..., "epoch": 20}`).
enum StateDict {
    /// Keys under which training scripts commonly store the state dict, preferred when several dicts hold tensors.
    static let preferredKeys = ["state_dict", "model", "net"]

    static func tensors(in top: PickleValue, name: String) throws -> [(String, TensorRef)] {
        guard case .dict(let d) = top else {
            throw CheckpointError("\(name): the checkpoint holds a \(top.kind), not a state dict")
        }
        let direct = named(d)
        if !direct.isEmpty { return direct }
        var nested: [(key: String, tensors: [(String, TensorRef)])] = []
        for (k, v) in d.entries {
            if case .string(let key) = k, case .dict(let inner) = v {
                let t = named(inner)
                if !t.isEmpty { nested.append((key, t)) }
            }
        }
        if nested.count == 1 { return nested[0].tensors }
        if let preferred = preferredKeys.lazy.compactMap({ p in nested.first { $0.key == p } }).first { return preferred.tensors }
        if nested.isEmpty { throw CheckpointError("\(name): no tensors found (not a state dict)") }
        throw CheckpointError("\(name): several state dicts (\(nested.map(\.key).joined(separator: ", "))); cannot tell which to convert")
    }

    /// The dict's string-keyed tensors in order.
    private static func named(_ d: PickleDict) -> [(String, TensorRef)] {
        d.entries.compactMap { k, v in
            if case .string(let key) = k, case .tensor(let t) = v { return (key, t) }
            return nil
        }
    }
}
