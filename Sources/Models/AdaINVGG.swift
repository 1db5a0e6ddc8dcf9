import Engine

/// Huang & Belongie's AdaIN network: VGG-19 encoder (vgg_normalised layout) to relu3_1 or relu4_1,
/// AdaIN, and the mirror decoder. Widths come from the weights' shapes, so the quarter-width
/// (cd16x) and the full 64/128/256/512 network are the same code.
public final class AdaINVGG: StyleNetwork, @unchecked Sendable {
    enum Step { case conv(Conv2DLayer), pool, upsample }

    public let architecture = "adain-vgg19"
    public let sizeMultiple: Int
    /// `relu3_1` or `relu4_1`.
    public let feature: String
    /// Channel widths of the four stages (only the first three used at relu3_1).
    public let widths: [Int]
    let encoder: [Step]
    let decoder: [Step]
    let encoderHead: BandedChain

    /// Builds the network from weights and their metadata (`feature`, `decoder_final_relu`).
    public init(weights st: SafeTensors) throws {
        let feature = st.metadata["feature"] ?? "relu4_1"
        guard feature == "relu4_1" || feature == "relu3_1" else {
            throw WeightsError("unsupported feature layer \(feature) (expected relu3_1 or relu4_1)")
        }
        let finalRelu = (st.metadata["decoder_final_relu"] ?? "false") == "true"
        self.feature = feature
        let stages = feature == "relu4_1" ? 4 : 3
        // adain-vgg19 inputs are padded to multiples of 8 whatever the feature layer
        // (relu3_1 would only need 4); keeping one rule keeps outputs comparable across variants.
        sizeMultiple = 8
        var widths: [Int] = []
        for s in 1...stages {
            let shape = try st.shape("encoder.conv\(s)_1.weight")
            guard shape.count == 4, shape[0] > 0 else { throw WeightsError("tensor encoder.conv\(s)_1.weight: shape \(shape) is not a conv weight") }
            widths.append(shape[0])
        }
        self.widths = widths
        let c = widths
        var enc: [Step] = [.conv(try st.conv("encoder.conv0", inChannels: 3, outChannels: 3, kernel: 1, padding: 0))]
        func e(_ n: String, _ i: Int, _ o: Int) throws -> Step { .conv(try st.conv("encoder." + n, inChannels: i, outChannels: o, kernel: 3, activation: .relu)) }
        enc += [try e("conv1_1", 3, c[0]), try e("conv1_2", c[0], c[0]), .pool,
                try e("conv2_1", c[0], c[1]), try e("conv2_2", c[1], c[1]), .pool,
                try e("conv3_1", c[1], c[2])]
        if stages == 4 {
            enc += [try e("conv3_2", c[2], c[2]), try e("conv3_3", c[2], c[2]), try e("conv3_4", c[2], c[2]), .pool,
                    try e("conv4_1", c[2], c[3])]
        }
        encoder = enc
        // conv0, conv1_1, conv1_2: the full-resolution head, banded for large images.
        guard case .conv(let c0) = enc[0], case .conv(let c11) = enc[1], case .conv(let c12) = enc[2] else { preconditionFailure() }
        encoderHead = BandedChain(name: "encoder.conv0-conv1_2", stages: [.init(layer: c0, mode: .identity),
                                  .init(layer: c11, mode: .identity), .init(layer: c12, mode: .identity)], kind: "conv3x3")
        var dec: [(String, Int, Int)?] = []   // nil = upsample
        if stages == 4 {
            dec += [("conv4_1", c[3], c[2]), nil, ("conv3_4", c[2], c[2]), ("conv3_3", c[2], c[2]), ("conv3_2", c[2], c[2])]
        }
        dec += [("conv3_1", c[2], c[1]), nil, ("conv2_2", c[1], c[1]), ("conv2_1", c[1], c[0]), nil,
                ("conv1_2", c[0], c[0]), ("conv1_1", c[0], 3)]
        var decSteps: [Step] = []
        for (i, d) in dec.enumerated() {
            guard let (n, ci, co) = d else { decSteps.append(.upsample); continue }
            let last = i == dec.count - 1
            decSteps.append(.conv(try st.conv("decoder." + n, inChannels: ci, outChannels: co, kernel: 3,
                                              activation: (!last || finalRelu) ? .relu : .none)))
        }
        decoder = decSteps
    }

    /// A direct-conv head runs in row bands for images of at least this many pixels: conv1_1's output
    /// then stays in cache instead of going to memory and back (BENCHMARKS.md, "Engine techniques").
    /// The decoder's full-resolution tail is slower banded and stays whole.
    static let bandThresholdPixels = 700_000
    static let bandRows = 32

    /// Band height for an image of `height` x `width` (nil: whole layers). Only heads whose convs
    /// run direct are banded: bands have no Winograd path, which pays more than cache locality.
    /// Since Winograd starts at 16 channels, that leaves heads narrower than 16 channels (none of
    /// the shipped weights: cd16x's head is faster whole, with conv1_2 in F(4x4), than banded
    /// direct); `RunContext.forcedBandRows` still bands any head, as the tests do.
    func bandRows(height: Int, width: Int, _ ctx: RunContext) -> Int? {
        if let forced = ctx.forcedBandRows { return forced }
        guard !encoderHead.stages.contains(where: { $0.layer.conv.usesWinograd }) else { return nil }
        return height * width >= AdaINVGG.bandThresholdPixels ? AdaINVGG.bandRows : nil
    }

    /// The encoder, its full-resolution head in bands when that pays.
    func encode(_ image: Tensor, _ ctx: RunContext, prefix: String) throws -> Tensor {
        guard let rows = bandRows(height: image.height, width: image.width, ctx) else { return try run(encoder, image, ctx, prefix: prefix) }
        let head = try encoderHead(image, bandRows: rows, ctx)
        return try run(Array(encoder.dropFirst(3)), head, ctx, prefix: prefix)
    }

    func run(_ steps: [Step], _ input: Tensor, _ ctx: RunContext, prefix: String) throws -> Tensor {
        var x = input
        var upsamplePending = false   // nearest 2x is fused into the next conv's input fetch
        var i = 0
        while i < steps.count {
            switch steps[i] {
            case .conv(let layer):
                if !upsamplePending, i + 1 < steps.count, case .pool = steps[i + 1] {
                    x = try layer.pooled(x, ctx)      // the pool is taken in the conv's output transform
                    i += 1
                } else {
                    x = upsamplePending ? try layer.upsampled(x, .nearest2x, ctx) : try layer(x, ctx)
                }
                upsamplePending = false
            case .pool: x = try ctx.layer(prefix + "pool", flops: 0) { Ops.maxPool2x2(x) }
            case .upsample: upsamplePending = true
            }
            i += 1
        }
        precondition(!upsamplePending, "decoder ends with an upsample")
        return x
    }

    func plan(_ steps: [Step], _ size: Size) -> (Double, Size) {
        var s = size, total = 0.0
        for step in steps {
            switch step {
            case .conv(let layer): let r = layer.plan(s); total += r.flops; s = r.size
            case .pool: s = Size(height: (s.height + 1) / 2, width: (s.width + 1) / 2)
            case .upsample: s = Size(height: s.height * 2, width: s.width * 2)
            }
        }
        return (total, s)
    }

    public func encodeStyle(_ image: Tensor, _ ctx: RunContext) throws -> StyleCode {
        let f = try encode(image, ctx, prefix: "style.")
        let (mean, std) = Ops.meanStd(f)
        return StyleCode(architecture: architecture, vectors: ["mean": mean, "std": std])
    }

    public func stylize(content: Tensor, styles: [StyleCode], weights: [Float], alpha: Float, _ ctx: RunContext) throws -> Tensor {
        guard alpha >= 0 && alpha <= 1 else { throw ParameterError("alpha must be in [0, 1]") }
        let w = try normalisedWeights(weights, count: styles.count)
        let cf = try encode(content, ctx, prefix: "content.")
        let mix = StyleCode.blend(zip(styles, w).map { ($0, $1) })
        let (cm, cs) = Ops.meanStd(cf)
        var (scale, shift) = adainAffine(contentMean: cm, contentStd: cs, styleMean: mix.vector("mean"), styleStd: mix.vector("std"))
        // alpha * t + (1 - alpha) * c is again a per-channel affine map of c.
        for i in 0..<scale.count {
            scale[i] = alpha * scale[i] + (1 - alpha)
            shift[i] = alpha * shift[i]
        }
        try ctx.layer("adain", flops: 0) { Ops.affineInPlace(cf, scale: scale, shift: shift) }
        return try run(decoder, cf, ctx, prefix: "decoder.")
    }

    public func stylize(content: Tensor, foreground: StyleCode, background: StyleCode, mask: RegionMask, alpha: Float,
                        _ ctx: RunContext) throws -> Tensor {
        guard alpha >= 0 && alpha <= 1 else { throw ParameterError("alpha must be in [0, 1]") }
        let cf = try encode(content, ctx, prefix: "content.")
        let m = mask.sampled(height: cf.height, width: cf.width)
        // t = AdaIN_regions(c), then alpha * t + (1 - alpha) * c: per region, again an affine map of c.
        let identity = ([Float](repeating: 1, count: cf.channels), [Float](repeating: 0, count: cf.channels))
        let maps = regionAdainMaps(cf, mask: m, foreground: (foreground.vector("mean"), foreground.vector("std")),
                                   background: (background.vector("mean"), background.vector("std")), alpha: alpha, blend: identity)
        try ctx.layer("adain (regions)", flops: 0) { Ops.regionAffineInPlace(cf, m, foreground: maps.foreground, background: maps.background) }
        return try run(decoder, cf, ctx, prefix: "decoder.")
    }

    public func plannedFlops(content: Size, styleSizes: [Size], alpha: Float) -> Double {
        let (ce, fs) = plan(encoder, content)
        let (de, _) = plan(decoder, fs)
        return ce + de + styleSizes.map { plan(encoder, $0).0 }.reduce(0, +)
    }
}
