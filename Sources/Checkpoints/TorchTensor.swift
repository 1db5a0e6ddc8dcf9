/// One tensor of a checkpoint: element type, shape, and where its elements lie in the file's bytes
/// (offset and strides into its storage, validated against the storage's size on creation).
public struct TorchTensor: @unchecked Sendable {
    /// The state-dict key.
    public let name: String
    /// The checkpoint's path, for messages.
    public let file: String
    public let dtype: TorchDType
    public let shape: [Int]
    /// The whole file; tensors share it (copy-on-write, never written).
    private let bytes: [UInt8]
    /// Byte offset of the storage's element 0 in `bytes`.
    private let base: Int
    private let offset: Int
    private let strides: [Int]

    /// Number of elements.
    public var count: Int { shape.reduce(1, *) }

    /// Checks that every element `ref` addresses lies inside the storage's `available` elements at
    /// byte `base` of `bytes`; all arithmetic is overflow-checked (sizes come from the file).
    init(file: String, name: String, ref: TensorRef, bytes: [UInt8], base: Int, available: Int) throws {
        func tooLarge() -> CheckpointError { CheckpointError("\(file): tensor \(name): size \(ref.shape) / stride \(ref.strides) is too large to address") }
        var count = 1
        var lastIndex = ref.offset
        for (n, s) in zip(ref.shape, ref.strides) {
            let (c, o1) = count.multipliedReportingOverflow(by: n)
            guard !o1 else { throw tooLarge() }
            count = c
            if n > 0 {
                let (step, o2) = (n - 1).multipliedReportingOverflow(by: s)
                let (sum, o3) = lastIndex.addingReportingOverflow(step)
                guard !o2, !o3 else { throw tooLarge() }
                lastIndex = sum
            }
        }
        let elementSize = ref.storage.dtype.elementSize
        let (storageBytes, o4) = available.multipliedReportingOverflow(by: elementSize)
        guard !o4, available >= 0, base >= 0, base <= bytes.count, storageBytes <= bytes.count - base else {
            throw CheckpointError("\(file): tensor \(name): its storage runs past the end of the file")
        }
        if count > 0 && lastIndex >= available {
            throw CheckpointError("\(file): tensor \(name): size \(ref.shape), stride \(ref.strides) and offset \(ref.offset) reach element \(lastIndex) of a storage of \(available)")
        }
        self.name = name
        self.file = file
        self.dtype = ref.storage.dtype
        self.shape = ref.shape
        self.bytes = bytes
        self.base = base
        self.offset = ref.offset
        self.strides = ref.strides
    }

    /// The elements in row-major (contiguous) order, honouring strides; only float32 tensors,
    /// because the engine computes in float32 and a silent conversion would hide a wrong file.
    public func floats() throws -> [Float] {
        guard dtype == .float32 else {
            throw CheckpointError("\(file): tensor \(name) is \(dtype.rawValue); only float32 weights can be converted")
        }
        let n = count
        var out = [Float](repeating: 0, count: n)
        guard n > 0 else { return out }
        bytes.withUnsafeBytes { raw in
            let src = raw.baseAddress! + base
            func load(_ element: Int) -> Float {
                Float(bitPattern: UInt32(littleEndian: src.loadUnaligned(fromByteOffset: 4 * element, as: UInt32.self)))
            }
            // Row-major strides: one run of n elements (the usual case for saved weights).
            var contiguous = true, expected = 1
            for (size, stride) in zip(shape, strides).reversed() where size != 1 {
                if stride != expected { contiguous = false }
                expected *= size
            }
            if contiguous {
                for i in 0..<n { out[i] = load(offset + i) }
                return
            }
            // Otherwise walk the index like an odometer, last dimension fastest.
            var index = [Int](repeating: 0, count: shape.count)
            var element = offset
            for i in 0..<n {
                out[i] = load(element)
                var d = shape.count - 1
                while d >= 0 {
                    index[d] += 1
                    element += strides[d]
                    if index[d] < shape[d] { break }
                    element -= strides[d] * shape[d]
                    index[d] = 0
                    d -= 1
                }
            }
        }
        return out
    }
}
