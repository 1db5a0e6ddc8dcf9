import Engine

/// MicroAST (Wang et al., AAAI 2023): light content and style encoders, AdaIN at two levels and
/// filter modulation by per-channel signals from the style, and a light decoder (see docs/ARCHITECTURE.md, "Models").
public final class MicroAST: StyleNetwork, @unchecked Sendable {
    /// One encoder (content or style): five convs and two residual blocks.
    struct Encoder {
        let convs: [Conv2DLayer]
        let stem: BandedChain
        let res1: ResidualBlock
        let res2: ResidualBlock

        init(_ st: SafeTensors, _ p: String) throws {
            convs = [
                try st.conv(p + "enc1.0.conv_layer", inChannels: 3, outChannels: 16, kernel: 9, activation: .relu),
                try st.conv(p + "enc1.2.conv_layer", inChannels: 16, outChannels: 32, kernel: 3, stride: 2, groups: 16, activation: .relu),
                try st.conv(p + "enc1.4.conv_layer", inChannels: 32, outChannels: 32, kernel: 1, activation: .relu),
                try st.conv(p + "enc1.6.conv_layer", inChannels: 32, outChannels: 64, kernel: 3, stride: 2, groups: 32, activation: .relu),
                try st.conv(p + "enc1.8.conv_layer", inChannels: 64, outChannels: 64, kernel: 1, activation: .relu),
            ]
            stem = BandedChain(name: p + "stem", stages: convs.map { .init(layer: $0, mode: .identity) })
            res1 = try ResidualBlock(st, p + "enc1.10")
            res2 = try ResidualBlock(st, p + "enc2.0")
        }

        /// Features (x1, x2) at a quarter of the input size. With `bandRows`, the full- and
        /// half-resolution stem runs in bands of that many quarter-resolution rows.
        func callAsFunction(_ image: Tensor, bandRows: Int?, _ ctx: RunContext) throws -> (Tensor, Tensor) {
            let x = try stem(image, bandRows: bandRows, ctx)
            let x1 = try res1(x, ctx)
            return (x1, try res2(x1, ctx))
        }

        func plan(_ size: Size) -> (Double, Size) {
            var s = size, total = 0.0
            for layer in convs { let r = layer.plan(s); total += r.flops; s = r.size }
            return (total + 2 * res1.plan(s), s)
        }
    }

    /// x + conv2(relu(conv1(x))), or with modulation signals w, b:
    /// x1 = conv1(x); x3 = relu(w*x1 + b*x); return x + (w*conv2(x3) + b*x3).
    struct ResidualBlock {
        let conv1: Conv2DLayer
        let conv2: Conv2DLayer
        let conv1Relu: Conv2DLayer

        init(_ st: SafeTensors, _ p: String) throws {
            conv1 = try st.conv(p + ".conv1.conv_layer", inChannels: 64, outChannels: 64, kernel: 3)
            conv1Relu = try st.conv(p + ".conv1.conv_layer", inChannels: 64, outChannels: 64, kernel: 3, activation: .relu)
            conv2 = try st.conv(p + ".conv2.conv_layer", inChannels: 64, outChannels: 64, kernel: 3)
        }

        func callAsFunction(_ x: Tensor, _ ctx: RunContext) throws -> Tensor {
            let y = try conv2(try conv1Relu(x, ctx), ctx)
            Ops.addInPlace(y, x)
            return y
        }

        func modulated(_ x: Tensor, w: [Float], b: [Float], _ ctx: RunContext) throws -> Tensor {
            // x3 reuses x1's buffer and the result reuses x4's: three activations live, not five.
            let x3 = try conv1(x, ctx)
            Ops.combine(x3, w, x, b, relu: true, into: x3)
            let y = try conv2(x3, ctx)
            Ops.combine(y, w, x3, b, into: y)
            Ops.addInPlace(y, x)
            return y
        }

        /// `modulated` with signals that are maps: the foreground's vectors where `mask` is set, the background's elsewhere.
        func modulated(_ x: Tensor, w: (foreground: [Float], background: [Float]), b: (foreground: [Float], background: [Float]),
                       mask: RegionMask, _ ctx: RunContext) throws -> Tensor {
            let x3 = try conv1(x, ctx)
            Ops.regionCombine(x3, w, x, b, mask: mask, relu: true, into: x3)
            let y = try conv2(x3, ctx)
            Ops.regionCombine(y, w, x3, b, mask: mask, into: y)
            Ops.addInPlace(y, x)
            return y
        }

        func plan(_ s: Size) -> Double { conv1.plan(s).flops + conv2.plan(s).flops }
    }

    public let architecture = "microast"
    public let sizeMultiple = 4
    let contentEncoder: Encoder
    let styleEncoder: Encoder
    let modulators: [String: Conv2DLayer]   // weight1, bias1 (on x1), weight2, bias2 (on x2)
    let dec1: ResidualBlock
    let dec2: ResidualBlock
    let dec3: [Conv2DLayer]                 // 3.1, 3.3 | up | 3.6, 3.8 | 3.10
    let tail: BandedChain                   // bilinear up, dec3.1, dec3.3, bilinear up, dec3.6, dec3.8, dec3.10

    /// Content images above this many pixels run their full- and half-resolution layers in row bands,
    /// which bounds memory for ultra-resolution jobs (a 4K job's 16-channel full-size activations alone are 530 MB each).
    public static let bandThresholdPixels = 2_400_000
    /// Final rows per band: quarter-resolution rows for the encoder stem, full-resolution rows for the decoder tail.
    static let stemBandRows = 32
    static let tailBandRows = 128

    /// Builds the network, checking every tensor's presence and shape.
    public init(weights st: SafeTensors) throws {
        contentEncoder = try Encoder(st, "content_encoder.")
        styleEncoder = try Encoder(st, "style_encoder.")
        var mods: [String: Conv2DLayer] = [:]
        for n in ["weight1", "bias1", "weight2", "bias2"] {
            mods[n] = try st.conv("modulator.\(n).0.conv_layer", inChannels: 64, outChannels: 64, kernel: 3, groups: 64)
        }
        modulators = mods
        dec1 = try ResidualBlock(st, "decoder.dec1")
        dec2 = try ResidualBlock(st, "decoder.dec2")
        dec3 = [
            try st.conv("decoder.dec3.1.conv_layer", inChannels: 64, outChannels: 32, kernel: 3, groups: 32, activation: .relu),
            try st.conv("decoder.dec3.3.conv_layer", inChannels: 32, outChannels: 32, kernel: 1, activation: .relu),
            try st.conv("decoder.dec3.6.conv_layer", inChannels: 32, outChannels: 16, kernel: 3, groups: 16, activation: .relu),
            try st.conv("decoder.dec3.8.conv_layer", inChannels: 16, outChannels: 16, kernel: 1, activation: .relu),
            try st.conv("decoder.dec3.10.conv_layer", inChannels: 16, outChannels: 3, kernel: 9),
        ]
        tail = BandedChain(name: "decoder.dec3", stages: [
            .init(layer: dec3[0], mode: .bilinear2x), .init(layer: dec3[1], mode: .identity),
            .init(layer: dec3[2], mode: .bilinear2x), .init(layer: dec3[3], mode: .identity),
            .init(layer: dec3[4], mode: .identity),
        ])
    }

    /// Band sizes for an image, or nil to run whole tensors.
    func bands(_ image: Tensor, _ ctx: RunContext) -> (stem: Int, tail: Int)? {
        if let forced = ctx.forcedBandRows { return (max(1, forced / 4), forced) }
        return image.height * image.width > MicroAST.bandThresholdPixels ? (MicroAST.stemBandRows, MicroAST.tailBandRows) : nil
    }

    public func encodeStyle(_ image: Tensor, _ ctx: RunContext) throws -> StyleCode {
        let (x1, x2) = try styleEncoder(image, bandRows: bands(image, ctx)?.stem, ctx)
        var v: [String: [Float]] = [:]
        (v["mean1"], v["std1"]) = Ops.meanStd(x1)
        (v["mean2"], v["std2"]) = Ops.meanStd(x2)
        for (name, input) in [("weight1", x1), ("bias1", x1), ("weight2", x2), ("bias2", x2)] {
            let key = name.hasPrefix("weight") ? "w" + name.suffix(1) : "b" + name.suffix(1)
            v[key] = Ops.globalAveragePool(try modulators[name]!(input, ctx))
        }
        return StyleCode(architecture: architecture, vectors: v)
    }

    public func stylize(content: Tensor, styles: [StyleCode], weights: [Float], alpha: Float, _ ctx: RunContext) throws -> Tensor {
        guard alpha >= 0 && alpha <= 1 else { throw ParameterError("alpha must be in [0, 1]") }
        var parts = zip(styles, try normalisedWeights(weights, count: styles.count)).map { ($0, $1 * alpha) }
        if alpha < 1 {
            // The content joins as one more style: MicroAST's decoder cannot take raw content features.
            parts.append((try encodeStyle(content, ctx), 1 - alpha))
        }
        let mix = StyleCode.blend(parts.map { (code: $0.0, weight: $0.1) })
        let bands = bands(content, ctx)
        var y = try contentEncoder(content, bandRows: bands?.stem, ctx).1   // x1 feeds only the style path
        y = try adain(y, mix, level: "2", ctx)
        y = try dec1.modulated(y, w: mix.vector("w2"), b: mix.vector("b2"), ctx)
        y = try adain(y, mix, level: "1", ctx)
        y = try dec2.modulated(y, w: mix.vector("w1"), b: mix.vector("b1"), ctx)
        // Both bilinear upsamplings are fused into the grouped convs that follow them.
        return try tail(y, bandRows: bands?.tail, ctx)
    }

    /// Spatial control (README.md, "Spatial control"): both AdaIN steps run per region, and the modulation signals are maps
    /// (the first style's on the foreground, the second's on the background); with `alpha < 1` every
    /// signal is blended with the content's own (taken as a style over the whole image).
    public func stylize(content: Tensor, foreground: StyleCode, background: StyleCode, mask: RegionMask, alpha: Float,
                        _ ctx: RunContext) throws -> Tensor {
        guard alpha >= 0 && alpha <= 1 else { throw ParameterError("alpha must be in [0, 1]") }
        let own = alpha < 1 ? try encodeStyle(content, ctx) : nil
        let bands = bands(content, ctx)
        var y = try contentEncoder(content, bandRows: bands?.stem, ctx).1
        // x1 and x2 have the same size: one sampled mask serves both levels.
        let m = mask.sampled(height: y.height, width: y.width)
        func signal(_ key: String) -> (foreground: [Float], background: [Float]) {
            func blended(_ code: StyleCode) -> [Float] {
                guard let own else { return code.vector(key) }
                return zip(code.vector(key), own.vector(key)).map { alpha * $0 + (1 - alpha) * $1 }
            }
            return (blended(foreground), blended(background))
        }
        y = try regionAdain(y, foreground, background, own: own, alpha: alpha, mask: m, level: "2", ctx)
        y = try dec1.modulated(y, w: signal("w2"), b: signal("b2"), mask: m, ctx)
        y = try regionAdain(y, foreground, background, own: own, alpha: alpha, mask: m, level: "1", ctx)
        y = try dec2.modulated(y, w: signal("w1"), b: signal("b1"), mask: m, ctx)
        return try tail(y, bandRows: bands?.tail, ctx)
    }

    func regionAdain(_ x: Tensor, _ fg: StyleCode, _ bg: StyleCode, own: StyleCode?, alpha: Float, mask: RegionMask,
                     level: String, _ ctx: RunContext) throws -> Tensor {
        try ctx.layer("adain\(level) (regions)", flops: 0) {
            var blend: (scale: [Float], shift: [Float])?
            if let own {
                let (m, s) = Ops.meanStd(x)
                blend = adainAffine(contentMean: m, contentStd: s, styleMean: own.vector("mean" + level), styleStd: own.vector("std" + level))
            }
            let maps = regionAdainMaps(x, mask: mask, foreground: (fg.vector("mean" + level), fg.vector("std" + level)),
                                       background: (bg.vector("mean" + level), bg.vector("std" + level)), alpha: alpha, blend: blend)
            Ops.regionAffineInPlace(x, mask, foreground: maps.foreground, background: maps.background)
            return x
        }
    }

    func adain(_ x: Tensor, _ mix: StyleCode, level: String, _ ctx: RunContext) throws -> Tensor {
        try ctx.layer("adain\(level)", flops: 0) {
            let (m, s) = Ops.meanStd(x)
            let (scale, shift) = adainAffine(contentMean: m, contentStd: s, styleMean: mix.vector("mean" + level), styleStd: mix.vector("std" + level))
            Ops.affineInPlace(x, scale: scale, shift: shift)
            return x
        }
    }

    public func plannedFlops(content: Size, styleSizes: [Size], alpha: Float) -> Double {
        func styleFlops(_ s: Size) -> Double {
            let (e, fs) = styleEncoder.plan(s)
            return e + 4 * modulators["weight1"]!.plan(fs).flops
        }
        let (ce, fs) = contentEncoder.plan(content)
        var total = ce + styleSizes.map(styleFlops).reduce(0, +) + (alpha < 1 ? styleFlops(content) : 0)
        total += 2 * dec1.plan(fs)
        var s = Size(height: fs.height * 2, width: fs.width * 2)
        for (i, layer) in dec3.enumerated() {
            if i == 2 { s = Size(height: s.height * 2, width: s.width * 2) }
            let r = layer.plan(s); total += r.flops; s = r.size
        }
        return total
    }
}
