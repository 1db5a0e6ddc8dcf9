import Engine

/// A feed-forward arbitrary-style-transfer network: encodes styles to codes, and stylizes a content
/// tensor (RGB in [0,1], CHW) with a blend of codes. Inputs must be multiples of `sizeMultiple`.
public protocol StyleNetwork: AnyObject, Sendable {
    /// `adain-vgg19` or `microast`.
    var architecture: String { get }
    /// Content sides must be multiples of this (8 for adain-vgg19 to relu4_1, 4 for microast).
    var sizeMultiple: Int { get }
    /// The style's code, from an RGB image tensor of any size.
    func encodeStyle(_ image: Tensor, _ ctx: RunContext) throws -> StyleCode
    /// Stylizes `content` with styles mixed by `weights` (normalised here to sum 1) at strength `alpha`.
    /// Returns the raw network output (3 channels, same size as `content`, not clamped).
    func stylize(content: Tensor, styles: [StyleCode], weights: [Float], alpha: Float, _ ctx: RunContext) throws -> Tensor
    /// Spatial control (README.md, "Spatial control"): `foreground` styles the positions `mask` sets, `background` the rest.
    /// `mask` may have any size; it is sampled at pixel centres at each feature map's size, where AdaIN
    /// runs per region (content statistics over the region alone, each region with its own style).
    func stylize(content: Tensor, foreground: StyleCode, background: StyleCode, mask: RegionMask, alpha: Float,
                 _ ctx: RunContext) throws -> Tensor
    /// Estimated FLOPs of `stylize` with styles encoded from images of `styleSizes` (for progress).
    func plannedFlops(content: Size, styleSizes: [Size], alpha: Float) -> Double
}

extension StyleNetwork {
    /// Encodes each style image, then stylizes: the whole job as one call, with progress planned over both.
    public func run(content: Tensor, styleImages: [Tensor], weights: [Float], alpha: Float, _ ctx: RunContext) throws -> Tensor {
        ctx.plannedFlops = plannedFlops(content: Size(height: content.height, width: content.width),
                                        styleSizes: styleImages.map { Size(height: $0.height, width: $0.width) }, alpha: alpha)
        let codes = try styleImages.map { try encodeStyle($0, ctx) }
        return try stylize(content: content, styles: codes, weights: weights, alpha: alpha, ctx)
    }

    /// Spatial control as one call: encodes the two style images, then stylizes with `mask`
    /// (set positions take the first style, the others the second).
    public func run(content: Tensor, styleImages: (Tensor, Tensor), mask: RegionMask, alpha: Float, _ ctx: RunContext) throws -> Tensor {
        let images = [styleImages.0, styleImages.1]
        ctx.plannedFlops = plannedFlops(content: Size(height: content.height, width: content.width),
                                        styleSizes: images.map { Size(height: $0.height, width: $0.width) }, alpha: alpha)
        let codes = try images.map { try encodeStyle($0, ctx) }
        return try stylize(content: content, foreground: codes[0], background: codes[1], mask: mask, alpha: alpha, ctx)
    }
}

/// AdaIN per region (spatial control): the affine map of each region of `mask` from its own
/// content statistics and its style's, blended as `alpha * regional + (1 - alpha) * blend` where
/// `blend` is the (scale, shift) given for the whole map (identity for adain-vgg19's content
/// features, the content's own style for MicroAST). An empty region gets zeros (it has no positions).
func regionAdainMaps(_ x: Tensor, mask: RegionMask, foreground: (mean: [Float], std: [Float]), background: (mean: [Float], std: [Float]),
                     alpha: Float, blend: (scale: [Float], shift: [Float])?) -> (foreground: (scale: [Float], shift: [Float]), background: (scale: [Float], shift: [Float])) {
    let stats = Ops.regionMeanStd(x, mask)
    func map(_ content: ChannelStats?, _ style: (mean: [Float], std: [Float])) -> (scale: [Float], shift: [Float]) {
        guard let content else { return ([Float](repeating: 0, count: x.channels), [Float](repeating: 0, count: x.channels)) }
        var (scale, shift) = adainAffine(contentMean: content.mean, contentStd: content.std, styleMean: style.mean, styleStd: style.std)
        if alpha < 1, let blend {
            for c in 0..<scale.count {
                scale[c] = alpha * scale[c] + (1 - alpha) * blend.scale[c]
                shift[c] = alpha * shift[c] + (1 - alpha) * blend.shift[c]
            }
        }
        return (scale, shift)
    }
    return (map(stats.foreground, foreground), map(stats.background, background))
}

/// Normalises style weights to sum 1; fails on negatives, a zero sum or a count mismatch.
func normalisedWeights(_ weights: [Float], count: Int) throws -> [Float] {
    guard weights.count == count else { throw ParameterError("\(weights.count) style weights for \(count) styles") }
    guard weights.allSatisfy({ $0 >= 0 && $0.isFinite }) else { throw ParameterError("style weights must be finite and >= 0") }
    let total = weights.reduce(0, +)
    guard total > 0 else { throw ParameterError("style weights sum to 0") }
    return weights.map { $0 / total }
}

/// A request parameter the network cannot use (bad weights, alpha out of range, ...).
public struct ParameterError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
