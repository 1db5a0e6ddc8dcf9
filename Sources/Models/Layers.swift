import Engine

/// A named convolution that reports its time, FLOPs and progress through a RunContext.
struct Conv2DLayer: Sendable {
    let name: String
    let conv: Conv2D

    func callAsFunction(_ x: Tensor, _ ctx: RunContext) throws -> Tensor {
        let (h, w) = conv.outputSize(height: x.height, width: x.width)
        return try ctx.layer(name, flops: conv.flops(outputHeight: h, outputWidth: w), kind: kind) { conv(x) }
    }

    /// "conv3x3", "conv9x9 g16 s2", ... for per-kind aggregation in benchmarks.
    var kind: String {
        "conv\(conv.kernel)x\(conv.kernel)" + (conv.groups > 1 ? " g\(conv.groups)" : "") + (conv.stride > 1 ? " s\(conv.stride)" : "")
    }

    /// The layer applied to `x` upsampled 2x (fused into the convolution's input fetch).
    func upsampled(_ x: Tensor, _ mode: ConvInput.Mode, _ ctx: RunContext) throws -> Tensor {
        let input = ConvInput(x, mode: mode)
        let (h, w) = conv.outputSize(height: input.height, width: input.width)
        return try ctx.layer(name, flops: conv.flops(outputHeight: h, outputWidth: w), kind: kind) { conv(input) }
    }

    /// The layer followed by a 2x2 max pool, fused where the convolution's path allows it.
    func pooled(_ x: Tensor, _ ctx: RunContext) throws -> Tensor {
        let (h, w) = conv.outputSize(height: x.height, width: x.width)
        return try ctx.layer(name + "+pool", flops: conv.flops(outputHeight: h, outputWidth: w), kind: kind) { conv.pooled(x) }
    }

    /// FLOPs and output size for an input of the given size (for progress planning).
    func plan(_ size: Size) -> (flops: Double, size: Size) {
        let (h, w) = conv.outputSize(height: size.height, width: size.width)
        return (conv.flops(outputHeight: h, outputWidth: w), Size(height: h, width: w))
    }
}

/// A spatial size.
public struct Size: Sendable, Equatable, Codable {
    public var height: Int
    public var width: Int
    public init(height: Int, width: Int) { self.height = height; self.width = width }
}
