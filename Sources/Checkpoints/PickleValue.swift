/// Element type of a torch storage, named by its pickled storage class (`torch.FloatStorage`, ...).
public enum TorchDType: String, Sendable, CaseIterable {
    case float32, float64, float16, bfloat16, int64, int32, int16, int8, uint8, bool

    /// Bytes per element.
    public var elementSize: Int {
        switch self {
        case .float64, .int64: return 8
        case .float32, .int32: return 4
        case .float16, .bfloat16, .int16: return 2
        case .int8, .uint8, .bool: return 1
        }
    }

    /// The storage class torch pickles for this type (`FloatStorage`), the only names GLOBAL may use for storages.
    var storageClass: String {
        switch self {
        case .float32: return "FloatStorage"
        case .float64: return "DoubleStorage"
        case .float16: return "HalfStorage"
        case .bfloat16: return "BFloat16Storage"
        case .int64: return "LongStorage"
        case .int32: return "IntStorage"
        case .int16: return "ShortStorage"
        case .int8: return "CharStorage"
        case .uint8: return "ByteStorage"
        case .bool: return "BoolStorage"
        }
    }
}

/// The classes and functions a state-dict pickle may name (GLOBAL): anything else is refused,
/// so reading a checkpoint can never run code the way Python's unpickler would.
enum PickleGlobal: Equatable {
    case orderedDict
    case rebuildTensorV2
    case rebuildParameter
    case storage(TorchDType)

    init?(module: String, name: String) {
        switch (module, name) {
        case ("collections", "OrderedDict"): self = .orderedDict
        case ("torch._utils", "_rebuild_tensor_v2"): self = .rebuildTensorV2
        case ("torch._utils", "_rebuild_parameter"): self = .rebuildParameter
        case ("torch", _):
            guard let t = TorchDType.allCases.first(where: { $0.storageClass == name }) else { return nil }
            self = .storage(t)
        default: return nil
        }
    }
}

/// A storage record a tensor points into, as its persistent id described it (element units).
struct StorageRef: Equatable {
    let key: String
    let dtype: TorchDType
    /// Where a legacy storage view starts inside its root storage (0 otherwise).
    let viewOffset: Int
    /// Elements the persistent id declares (the view's size for a legacy view).
    let count: Int
}

/// What `_rebuild_tensor_v2` was given: a storage and the offset, shape and strides into it.
struct TensorRef: Equatable {
    let storage: StorageRef
    let offset: Int
    let shape: [Int]
    let strides: [Int]
}

/// A mutable pickled list: SETITEMS/APPENDS change it after it was memoized, so it needs reference semantics.
final class PickleList {
    var items: [PickleValue] = []
}

/// A mutable pickled dict (dict or OrderedDict), keeping insertion order as state dicts do.
final class PickleDict {
    private(set) var entries: [(key: PickleValue, value: PickleValue)] = []
    private var stringIndex: [String: Int] = [:]

    func set(_ key: PickleValue, _ value: PickleValue) {
        if case .string(let s) = key {
            if let i = stringIndex[s] { entries[i].value = value; return }
            stringIndex[s] = entries.count
        }
        entries.append((key, value))
    }

    func value(forKey key: String) -> PickleValue? { stringIndex[key].map { entries[$0].value } }

    /// Drops every entry (see `PickleArena`).
    func removeAll() { entries.removeAll(); stringIndex.removeAll() }
}

/// A tuple with its nesting depth, tracked so hostile input cannot nest values deep enough to
/// overflow the stack when they are released.
struct PickleTuple {
    let items: [PickleValue]
    let depth: Int
}

/// One value on the unpickler's stack: only what state dicts contain.
enum PickleValue {
    case none
    case bool(Bool)
    case int(Int)
    /// A LONG too wide for Int, as its little-endian two's-complement bytes (torch's magic number).
    case bigInt([UInt8])
    case float(Double)
    case string(String)
    case tuple(PickleTuple)
    case list(PickleList)
    case dict(PickleDict)
    case global(PickleGlobal)
    case storage(StorageRef)
    case tensor(TensorRef)

    /// Nesting depth for the limit in `Unpickler` (lists and dicts count 1: see `PickleArena`).
    var depth: Int {
        if case .tuple(let t) = self { return t.depth }
        return 1
    }

    /// A short name of the value's kind for error messages.
    var kind: String {
        switch self {
        case .none: return "None"
        case .bool: return "bool"
        case .int, .bigInt: return "int"
        case .float: return "float"
        case .string: return "str"
        case .tuple: return "tuple"
        case .list: return "list"
        case .dict: return "dict"
        case .global: return "class"
        case .storage: return "storage"
        case .tensor: return "tensor"
        }
    }
}
