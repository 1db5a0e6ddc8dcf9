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
