/// Activation fused into a layer's epilogue.
public enum Activation: Sendable { case none, relu }

/// A 2-D convolution with reflection padding, any kernel size, stride and group count,
/// with bias and activation fused. Weights are repacked once at construction for the micro-kernel.
///
/// This file holds the layer (its weights, and which path a call takes); the paths live beside it:
/// - direct (`DirectConv.swift`): the `kernel` input rows each output row needs are copied,
///   reflection-padded and split into `stride` phases (`PaddedRows.swift`) into a small per-thread
///   scratch. No padded copy or im2col of a whole tensor is ever made.
/// - Winograd F(4x4, 3x3) for dense 3x3 layers (`Winograd4.swift`), whole tensors only.
/// - polyphase for narrow dense 3x3 layers reading a nearest-upsampled input (`Polyphase.swift`).
/// All of them accumulate in the register-blocked micro-kernel (`MicroKernel.swift`): 4 output
/// channels x 24 pixels in twelve SIMD8 registers, or x 48 pixels in twelve SIMD16 registers on
/// CPUs with AVX-512 (`EngineKernels512`); the layer's `kernels` give the tile widths. Inputs seen through 2x upsampling are computed
/// a row at a time (`ConvInput.swift`).
public final class Conv2D: @unchecked Sendable {
    public let inChannels: Int
    public let outChannels: Int
    public let kernel: Int
    public let stride: Int
    public let groups: Int
    public let padding: Int
    public let activation: Activation

    let inPerGroup: Int
    let outPerGroup: Int
    /// Packed weights: per group, per output tile of up to `tileChannels`, layout [ic][ky][kx][tile].
    let packed: UnsafeMutablePointer<Float>
    let packedCount: Int
    let biasValues: UnsafeMutablePointer<Float>
    /// F(4x4,3x3)-transformed weights, when this layer uses Winograd with 4x4 output tiles (the default).
    let winograd4: Winograd4Weights?
    /// Collapsed 2x2 weights for inputs seen through nearest 2x upsampling (see `PolyphaseWeights`),
    /// for dense 3x3 layers narrower than `polyphaseMaxChannels`: polyphase beats Winograd F(4x4) at
    /// 16 channels and loses at 64, so the threshold sits between them (`stylist bench --no-polyphase`
    /// compares the two; BENCHMARKS.md, "Engine techniques").
    let polyphase: PolyphaseWeights?
    /// The paths this layer may take (fixed when it is built).
    public let options: EngineOptions
    /// The micro-kernels every path of this layer runs, and their tile widths.
    let kernels: MicroKernels

    /// Dense 3x3 convs narrower than this (in or out) also get polyphase weights, used instead of
    /// Winograd for nearest-upsampled inputs (2.25x fewer FLOPs at direct-conv speed).
    static let polyphaseMaxChannels = 32

    static let tileChannels = 4
    static let tileVectors = 3
    /// Width of the AVX2 tile (`convTile`); the AVX-512 one is `Kernels512.tilePixels`.
    static let tilePixels = tileVectors * 8
    /// Width of the AVX2 3-channel tile (`convTile3x32`).
    static let wideTilePixels = 32

    /// `weight` is OIHW with I = inChannels / groups (PyTorch's layout); `padding` defaults to kernel / 2.
    public init(weight: [Float], bias: [Float], inChannels: Int, outChannels: Int, kernel: Int,
                stride: Int = 1, groups: Int = 1, padding: Int? = nil, activation: Activation = .none,
                options: EngineOptions = EngineOptions()) {
        self.options = options
        kernels = MicroKernels(options: options)
        precondition(kernel >= 1 && stride >= 1 && groups >= 1, "bad conv geometry")
        precondition(inChannels % groups == 0 && outChannels % groups == 0, "channels not divisible by groups")
        self.inChannels = inChannels
        self.outChannels = outChannels
        self.kernel = kernel
        self.stride = stride
        self.groups = groups
        self.padding = padding ?? kernel / 2
        self.activation = activation
        inPerGroup = inChannels / groups
        outPerGroup = outChannels / groups
        let taps = kernel * kernel
        precondition(weight.count == outChannels * inPerGroup * taps, "weight count \(weight.count) != \(outChannels)x\(inPerGroup)x\(kernel)x\(kernel)")
        precondition(bias.count == outChannels, "bias count \(bias.count) != \(outChannels)")
        let pad = padding ?? kernel / 2
        let dense3x3 = kernel == 3 && stride == 1 && groups == 1 && pad == 1
        let winogradEligible = options.winograd && dense3x3 && min(inChannels, outChannels) >= options.winogradMinChannels
        polyphase = options.polyphase && dense3x3 && min(inChannels, outChannels) < Conv2D.polyphaseMaxChannels
            ? PolyphaseWeights(weight: weight, inChannels: inChannels, outChannels: outChannels) : nil
        winograd4 = winogradEligible
            ? Winograd4Weights(weight: weight, inChannels: inChannels, outChannels: outChannels) : nil
        packedCount = weight.count
        packed = .allocate(capacity: packedCount)
        biasValues = .allocate(capacity: outChannels)
        bias.withUnsafeBufferPointer { biasValues.initialize(from: $0.baseAddress!, count: outChannels) }
        // Pack: for each output tile, all of its weights contiguous in the micro-kernel's read order.
        var dst = 0
        for g in 0..<groups {
            var t0 = 0
            while t0 < outPerGroup {
                let tile = min(Conv2D.tileChannels, outPerGroup - t0)
                for ic in 0..<inPerGroup {
                    for tap in 0..<taps {
                        for t in 0..<tile {
                            let oc = g * outPerGroup + t0 + t
                            packed[dst] = weight[(oc * inPerGroup + ic) * taps + tap]
                            dst += 1
                        }
                    }
                }
                t0 += tile
            }
        }
        precondition(dst == packedCount)
    }

    deinit {
        packed.deallocate()
        biasValues.deallocate()
        winograd4?.deallocate()
        polyphase?.deallocate()
    }

    /// Whole-tensor runs of this layer use Winograd (band runs never do).
    public var usesWinograd: Bool { winograd4 != nil }

    /// Output spatial size for an input of `height` x `width`.
    public func outputSize(height: Int, width: Int) -> (height: Int, width: Int) {
        ((height + 2 * padding - kernel) / stride + 1, (width + 2 * padding - kernel) / stride + 1)
    }

    /// Multiply-adds x2 for one application at this output size (direct-convolution FLOPs).
    public func flops(outputHeight: Int, outputWidth: Int) -> Double {
        2.0 * Double(outChannels * inPerGroup * kernel * kernel) * Double(outputHeight * outputWidth)
    }

    /// Applies the convolution to a whole tensor.
    public func callAsFunction(_ input: Tensor) -> Tensor {
        precondition(input.channels == inChannels, "conv expects \(inChannels) channels, got \(input.shapeDescription)")
        guard kernel == 1 && stride == 1 && padding == 0 else { return self(ConvInput(input)) }
        let out = Tensor(channels: outChannels, height: input.height, width: input.width)
        runPointwise(input, into: out)
        return out
    }

    /// Applies the convolution to a (possibly virtually upsampled) input.
    public func callAsFunction(_ input: ConvInput) -> Tensor {
        precondition(input.tensor.channels == inChannels, "conv expects \(inChannels) channels, got \(input.tensor.shapeDescription)")
        let (ho, wo) = outputSize(height: input.height, width: input.width)
        let out = Tensor(channels: outChannels, height: ho, width: wo)
        if let polyphase, input.mode == .nearest2x, input.rowOffset == 0,
           input.fullHeight == input.tensor.height, input.tensor.height >= 2, input.tensor.width >= 2 {
            runPolyphase(input.tensor, polyphase, into: out)
        } else if let winograd4 {
            runWinograd4(input, winograd4, into: out)
        } else if groups > 1 {
            runGroupedPlanes(input, into: out, outputRows: 0..<ho)
        } else {
            run(input, into: out, outputRows: 0..<ho)
        }
        return out
    }

    /// This convolution followed by a 2x2 max pool (ceil mode), as `Ops.maxPool2x2(conv(input))`.
    /// On the F(4x4) path the pool is taken in the output transform and the full-size output is never
    /// written; other paths convolve, then pool.
    public func pooled(_ input: Tensor) -> Tensor {
        guard let winograd4, input.channels == inChannels else { return Ops.maxPool2x2(self(input)) }
        let out = Tensor(channels: outChannels, height: (input.height + 1) / 2, width: (input.width + 1) / 2)
        runWinograd4(ConvInput(input), winograd4, into: out, pooled: true)
        return out
    }

    /// Logical output rows `rows` of this convolution as a band tensor (row 0 = `rows.lowerBound`).
    /// `input` may itself be a band; it must hold `inputRows(for: rows, ...)`.
    public func band(_ input: ConvInput, rows: Range<Int>) -> Tensor {
        let wo = outputSize(height: input.height, width: input.width).width
        let out = Tensor(channels: outChannels, height: rows.count, width: wo)
        if kernel == 1 && stride == 1 && padding == 0 && input.mode == .identity {
            precondition(input.rowOffset <= rows.lowerBound && rows.upperBound <= input.rowOffset + input.tensor.height, "pointwise band lacks rows")
            if input.rowOffset == rows.lowerBound && input.tensor.height == rows.count {
                runPointwise(input.tensor, into: out)
            } else {
                run(input, into: out, outputRows: rows, outputRowOffset: rows.lowerBound)
            }
        } else if groups > 1 {
            runGroupedPlanes(input, into: out, outputRows: rows, outputRowOffset: rows.lowerBound)
        } else {
            run(input, into: out, outputRows: rows, outputRowOffset: rows.lowerBound)
        }
        return out
    }

    /// The logical input rows (of an input `inputHeight` rows tall) that output rows `rows` read,
    /// reflection included.
    public func inputRows(for rows: Range<Int>, inputHeight: Int) -> Range<Int> {
        let lo = rows.lowerBound * stride - padding
        let hi = (rows.upperBound - 1) * stride - padding + kernel
        // Reflection at an edge reads rows within `padding` of it, which [0, hi) / [lo, H) already hold.
        return max(0, lo)..<min(inputHeight, max(hi, padding + 1))
    }
}
