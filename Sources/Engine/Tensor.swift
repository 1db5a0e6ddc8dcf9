/// A CHW float32 tensor (one image's activations) in 64-byte aligned memory owned by this object.
public final class Tensor: @unchecked Sendable {
    public let channels: Int
    public let height: Int
    public let width: Int
    public let data: UnsafeMutablePointer<Float>

    /// Elements in one channel plane.
    @inlinable public var planeSize: Int { height * width }
    /// Total elements.
    @inlinable public var count: Int { channels * height * width }

    /// Allocates an uninitialised tensor (or zero-filled when `zeroed`).
    public init(channels: Int, height: Int, width: Int, zeroed: Bool = false) {
        precondition(channels > 0 && height > 0 && width > 0, "empty tensor \(channels)x\(height)x\(width)")
        self.channels = channels
        self.height = height
        self.width = width
        let n = channels * height * width
        // Round up so SIMD tails may read (never write) a little past the end.
        data = Memory.allocateFloats(n + 64)
        if zeroed { data.initialize(repeating: 0, count: n + 64) } else { (data + n).initialize(repeating: 0, count: 64) }
    }

    /// Copies `values` (CHW order) into a new tensor.
    public convenience init(channels: Int, height: Int, width: Int, values: [Float]) {
        precondition(values.count == channels * height * width, "value count \(values.count) does not match \(channels)x\(height)x\(width)")
        self.init(channels: channels, height: height, width: width)
        values.withUnsafeBufferPointer { data.update(from: $0.baseAddress!, count: values.count) }
    }

    deinit {
        Memory.free(data)
    }

    /// Start of channel `c`'s plane.
    @inlinable public func plane(_ c: Int) -> UnsafeMutablePointer<Float> { data + c * planeSize }

    /// The element at (c, y, x); for tests and small bookkeeping, not for kernels.
    public subscript(c: Int, y: Int, x: Int) -> Float {
        get { data[(c * height + y) * width + x] }
        set { data[(c * height + y) * width + x] = newValue }
    }

    /// The values as a CHW array.
    public var values: [Float] { Array(UnsafeBufferPointer(start: data, count: count)) }

    /// A tensor with the same values.
    public func copy() -> Tensor {
        let t = Tensor(channels: channels, height: height, width: width)
        t.data.update(from: data, count: count)
        return t
    }

    /// Shape as "CxHxW" for messages.
    public var shapeDescription: String { "\(channels)x\(height)x\(width)" }
}
