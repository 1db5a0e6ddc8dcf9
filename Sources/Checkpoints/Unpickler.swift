import Foundation

/// Owns every list and dict one unpickling creates and empties them all at the end: lists and
/// dicts can be nested (or made cyclic) after creation, where no depth limit can see it, and
/// releasing a long chain of nested containers would recurse once per level and could
/// overflow the stack. Emptying each container first breaks every chain and cycle.
final class PickleArena {
    private var lists: [PickleList] = []
    private var dicts: [PickleDict] = []

    func newList() -> PickleList { let l = PickleList(); lists.append(l); return l }
    func newDict() -> PickleDict { let d = PickleDict(); dicts.append(d); return d }

    func releaseAll() {
        for l in lists { l.items.removeAll() }
        for d in dicts { d.removeAll() }
        lists.removeAll()
        dicts.removeAll()
    }
}

/// A restricted unpickler for PyTorch state dicts: the opcodes `torch.save` emits for dicts of
/// tensors (protocols 2-4), GLOBAL limited to `PickleGlobal`, REDUCE only on those. It builds
/// values, never objects of arbitrary classes, so a hostile pickle can be refused but never run.
struct Unpickler {
    /// Resolves a BINPERSID id (torch's storage references) to a value.
    typealias PersistentLoad = (PickleValue) throws -> PickleValue

    /// Tuple nesting allowed: state dicts nest three or four levels.
    static let maxDepth = 64

    /// Reads one pickle at `cursor` (which is left after its STOP), hands the result to `body`,
    /// then releases everything the pickle built. `body` must copy out what it needs.
    static func load<T>(_ cursor: inout ByteCursor, persistentLoad: PersistentLoad? = nil,
                        _ body: (PickleValue) throws -> T) throws -> T {
        var machine = Unpickler(cursor: cursor, persistentLoad: persistentLoad)
        defer {
            machine.arena.releaseAll()
            machine.stack.removeAll()
            machine.memo.removeAll()
        }
        let value = try machine.run()
        cursor = machine.cursor
        return try body(value)
    }

    private var cursor: ByteCursor
    private let persistentLoad: PersistentLoad?
    private let arena = PickleArena()
    private var stack: [PickleValue] = []
    private var marks: [Int] = []
    private var memo: [Int: PickleValue] = [:]

    private init(cursor: ByteCursor, persistentLoad: PersistentLoad?) {
        self.cursor = cursor
        self.persistentLoad = persistentLoad
    }

    private var name: String { cursor.name }

    private func error(_ message: String) -> CheckpointError { CheckpointError("\(name): pickle: \(message)") }

    private mutating func pop(_ what: String) throws -> PickleValue {
        guard let v = stack.popLast(), stack.count >= (marks.last ?? 0) else { throw error("stack underflow at \(what)") }
        return v
    }

    /// Everything above the last MARK, removing the mark.
    private mutating func popToMark(_ what: String) throws -> [PickleValue] {
        guard let m = marks.popLast(), m <= stack.count else { throw error("\(what) without MARK") }
        defer { stack.removeSubrange(m...) }
        return Array(stack[m...])
    }

    private mutating func pushTuple(_ items: [PickleValue]) throws {
        let depth = (items.map(\.depth).max() ?? 0) + 1
        guard depth <= Self.maxDepth else { throw error("values nested deeper than \(Self.maxDepth) levels") }
        stack.append(.tuple(PickleTuple(items: items, depth: depth)))
    }

    private mutating func string(length: Int) throws -> String {
        let bytes = try cursor.take(length, "string")
        guard let s = String(bytes: bytes, encoding: .utf8) else { throw error("string is not valid UTF-8") }
        return s
    }

    /// A newline-terminated line of GLOBAL's text operand.
    private mutating func line() throws -> String {
        var bytes: [UInt8] = []
        while true {
            let b = try cursor.byte("GLOBAL name")
            if b == 0x0A { break }
            bytes.append(b)
            guard bytes.count <= 256 else { throw error("GLOBAL name longer than 256 bytes") }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// A little-endian two's-complement integer of `count` bytes (LONG1/LONG4).
    private mutating func long(_ count: Int) throws -> PickleValue {
        let bytes = Array(try cursor.take(count, "LONG"))
        guard !bytes.isEmpty else { return .int(0) }
        guard bytes.count <= 8 else { return .bigInt(bytes) }
        var v: UInt64 = 0
        for (i, b) in bytes.enumerated() { v |= UInt64(b) << (8 * UInt64(i)) }
        if bytes.count < 8, bytes.last! & 0x80 != 0 { v |= ~0 << (8 * UInt64(bytes.count)) }  // sign-extend
        return .int(Int(Int64(bitPattern: v)))
    }

    private mutating func global(module: String, name gname: String) throws {
        guard let g = PickleGlobal(module: module, name: gname) else {
            throw error("global \(module).\(gname) is not allowed (a state dict needs only OrderedDict, tensors and storages; this reader never runs code)")
        }
        stack.append(.global(g))
    }

    private mutating func memoize(_ index: Int) throws {
        guard let top = stack.last else { throw error("memo put on an empty stack") }
        memo[index] = top
    }

    private mutating func memoGet(_ index: Int) throws {
        guard let v = memo[index] else { throw error("memo get of unknown index \(index)") }
        stack.append(v)
    }

    private mutating func setItems(_ pairs: [PickleValue]) throws {
        guard pairs.count % 2 == 0 else { throw error("SETITEMS with an odd number of values") }
        guard case .dict(let d) = try pop("SETITEMS") else { throw error("SETITEM(S) on a value that is not a dict") }
        for i in stride(from: 0, to: pairs.count, by: 2) { d.set(pairs[i], pairs[i + 1]) }
        stack.append(.dict(d))
    }

    private mutating func append(_ items: [PickleValue]) throws {
        guard case .list(let l) = try pop("APPEND") else { throw error("APPEND(S) on a value that is not a list") }
        l.items.append(contentsOf: items)
        stack.append(.list(l))
    }

    private mutating func run() throws -> PickleValue {
        while true {
            let at = cursor.position
            let op = try cursor.byte("opcode")
            switch op {
            case 0x80: // PROTO
                let p = try cursor.byte("protocol")
                guard p <= 5 else { throw error("unsupported pickle protocol \(p)") }
            case 0x95: try cursor.skip(8, "FRAME")
            case 0x2E: // STOP
                guard marks.isEmpty, stack.count == 1 else { throw error("malformed pickle (STOP with \(stack.count) values on the stack)") }
                return stack[0]
            case 0x28: marks.append(stack.count) // MARK
            case 0x7D: stack.append(.dict(arena.newDict())) // EMPTY_DICT
            case 0x5D: stack.append(.list(arena.newList())) // EMPTY_LIST
            case 0x29: try pushTuple([]) // EMPTY_TUPLE
            case 0x64: // DICT
                let items = try popToMark("DICT")
                stack.append(.dict(arena.newDict()))
                try setItems(items)
            case 0x6C: // LIST
                let items = try popToMark("LIST")
                stack.append(.list(arena.newList()))
                try append(items)
            case 0x4E: stack.append(.none) // NONE
            case 0x88: stack.append(.bool(true)) // NEWTRUE
            case 0x89: stack.append(.bool(false)) // NEWFALSE
            case 0x4B: stack.append(.int(Int(try cursor.uint(1, "BININT1")))) // BININT1
            case 0x4D: stack.append(.int(Int(try cursor.uint(2, "BININT2")))) // BININT2
            case 0x4A: stack.append(.int(Int(Int32(truncatingIfNeeded: try cursor.uint(4, "BININT"))))) // BININT
            case 0x8A: stack.append(try long(Int(try cursor.uint(1, "LONG1")))) // LONG1
            case 0x8B: // LONG4
                let n = Int(Int32(truncatingIfNeeded: try cursor.uint(4, "LONG4")))
                guard n >= 0, n <= 64 else { throw error("LONG4 of \(n) bytes") }
                stack.append(try long(n))
            case 0x47: // BINFLOAT (big-endian double)
                let r = try cursor.range(8, "BINFLOAT")
                stack.append(.float(Double(bitPattern: cursor.bytes[r].reduce(UInt64(0)) { $0 << 8 | UInt64($1) })))
            case 0x58: stack.append(.string(try string(length: try cursor.u32("BINUNICODE length")))) // BINUNICODE
            case 0x8C: stack.append(.string(try string(length: Int(try cursor.byte("SHORT_BINUNICODE length"))))) // SHORT_BINUNICODE
            case 0x8D: stack.append(.string(try string(length: try cursor.u64("BINUNICODE8 length")))) // BINUNICODE8
            case 0x85: try pushTuple([try pop("TUPLE1")]) // TUPLE1
            case 0x86: // TUPLE2
                let b = try pop("TUPLE2"), a = try pop("TUPLE2")
                try pushTuple([a, b])
            case 0x87: // TUPLE3
                let c = try pop("TUPLE3"), b = try pop("TUPLE3"), a = try pop("TUPLE3")
                try pushTuple([a, b, c])
            case 0x74: try pushTuple(try popToMark("TUPLE")) // TUPLE
            case 0x63: // GLOBAL
                let module = try line()
                try global(module: module, name: try line())
            case 0x93: // STACK_GLOBAL
                guard case .string(let gname) = try pop("STACK_GLOBAL"), case .string(let module) = try pop("STACK_GLOBAL") else {
                    throw error("STACK_GLOBAL operands are not strings")
                }
                try global(module: module, name: gname)
            case 0x52: // REDUCE
                let args = try pop("REDUCE"), callable = try pop("REDUCE")
                stack.append(try reduce(callable, args))
            case 0x62: // BUILD: the state sets attributes (a state dict's `_metadata`), which we do not need.
                _ = try pop("BUILD")
                guard !stack.isEmpty else { throw error("BUILD on an empty stack") }
            case 0x51: // BINPERSID
                let pid = try pop("BINPERSID")
                guard let persistentLoad else { throw error("persistent id where none is expected") }
                stack.append(try persistentLoad(pid))
            case 0x71: try memoize(Int(try cursor.uint(1, "BINPUT"))) // BINPUT
            case 0x72: try memoize(try cursor.u32("LONG_BINPUT")) // LONG_BINPUT
            case 0x94: try memoize(memo.count) // MEMOIZE
            case 0x68: try memoGet(Int(try cursor.uint(1, "BINGET"))) // BINGET
            case 0x6A: try memoGet(try cursor.u32("LONG_BINGET")) // LONG_BINGET
            case 0x73: // SETITEM
                let v = try pop("SETITEM"), k = try pop("SETITEM")
                try setItems([k, v])
            case 0x75: try setItems(try popToMark("SETITEMS")) // SETITEMS
            case 0x61: try append([try pop("APPEND")]) // APPEND
            case 0x65: try append(try popToMark("APPENDS")) // APPENDS
            case 0x30: _ = try pop("POP") // POP
            case 0x31: _ = try popToMark("POP_MARK") // POP_MARK
            case 0x32: // DUP
                guard let top = stack.last else { throw error("DUP on an empty stack") }
                stack.append(top)
            default:
                throw error(String(format: "unsupported opcode 0x%02X at byte %d (not one a state dict uses)", op, at))
            }
        }
    }

    /// REDUCE, allowed only for the constructors a state dict needs.
    private func reduce(_ callable: PickleValue, _ args: PickleValue) throws -> PickleValue {
        guard case .global(let g) = callable else { throw error("REDUCE on a \(callable.kind), not an allowed class") }
        guard case .tuple(let t) = args else { throw error("REDUCE arguments are a \(args.kind), not a tuple") }
        let a = t.items
        switch g {
        case .orderedDict:
            guard a.isEmpty else { throw error("OrderedDict with arguments") }
            return .dict(arena.newDict())
        case .rebuildParameter:
            guard let first = a.first, case .tensor = first else { throw error("_rebuild_parameter without a tensor") }
            return first
        case .rebuildTensorV2:
            return .tensor(try rebuildTensor(a))
        case .storage:
            throw error("storage classes are only allowed inside persistent ids")
        }
    }

    /// `_rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])`.
    private func rebuildTensor(_ a: [PickleValue]) throws -> TensorRef {
        guard a.count == 6 || a.count == 7, case .storage(let storage) = a[0], case .int(let offset) = a[1],
              case .tuple(let size) = a[2], case .tuple(let stride) = a[3] else {
            throw error("_rebuild_tensor_v2 arguments are not (storage, offset, size, stride, ...)")
        }
        func ints(_ t: PickleTuple, _ what: String) throws -> [Int] {
            try t.items.map { v in
                guard case .int(let n) = v, n >= 0 else { throw error("tensor \(what) holds a value that is not a non-negative int") }
                return n
            }
        }
        let shape = try ints(size, "size"), strides = try ints(stride, "stride")
        guard shape.count == strides.count, shape.count <= 8 else { throw error("tensor size \(shape) and stride \(strides) do not match") }
        guard offset >= 0 else { throw error("negative storage offset \(offset)") }
        return TensorRef(storage: storage, offset: offset, shape: shape, strides: strides)
    }
}
