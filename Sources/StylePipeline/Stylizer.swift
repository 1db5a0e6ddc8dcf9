import Engine
import Foundation
import ImageCodecs
import Models

/// Parameters of one stylization (the job fields of openapi.yaml), validated by `validate(styleCount:)`.
public struct StylizeOptions: Sendable, Codable, Equatable {
    /// Content-style trade-off in [0, 1]; 1 is full style.
    public var alpha: Float = 1
    /// One weight per style (normalised to sum 1); nil means equal weights.
    public var styleWeights: [Float]? = nil
    /// Recolour the styles to the content's colours first.
    public var preserveColor = false
    /// Longer side limit for content and styles (downscaled with a bicubic filter when larger).
    public var maxSize = 512
    /// Output encoding.
    public var format: ImageFormat = .png
    /// JPEG quality when `format` is jpeg.
    public var jpegQuality = 92

    public init() {}

    /// Throws `invalidParameter` with a one-line reason when the options cannot be used.
    /// With a mask (spatial control) there must be exactly two styles and no style weights.
    public func validate(styleCount: Int, masked: Bool = false) throws {
        guard styleCount >= 1 else { throw PipelineError.invalidParameter("at least one style is required") }
        if masked {
            guard styleCount == 2 else {
                throw PipelineError.invalidParameter("a mask needs exactly two styles (white: the first, dark: the second), got \(styleCount)")
            }
            guard styleWeights == nil else {
                throw PipelineError.invalidParameter("style_weights cannot be combined with a mask (the mask chooses the style at each place)")
            }
        }
        guard alpha.isFinite, alpha >= 0, alpha <= 1 else { throw PipelineError.invalidParameter("alpha must be between 0 and 1, got \(alpha)") }
        if let w = styleWeights {
            guard w.count == styleCount else {
                throw PipelineError.invalidParameter("style_weights has \(w.count) value\(w.count == 1 ? "" : "s") for \(styleCount) style\(styleCount == 1 ? "" : "s")")
            }
            guard w.allSatisfy({ $0.isFinite && $0 >= 0 }), w.reduce(0, +) > 0 else {
                throw PipelineError.invalidParameter("style_weights must be non-negative numbers with a positive sum")
            }
        }
        guard maxSize >= Stylizer.minimumSide, maxSize <= 16384 else {
            throw PipelineError.invalidParameter("max_size must be between \(Stylizer.minimumSide) and 16384, got \(maxSize)")
        }
        guard (1...100).contains(jpegQuality) else { throw PipelineError.invalidParameter("jpeg quality must be 1...100") }
    }
}

/// A style for one job: an image, or the cached code of a registered style (skips the style encoder).
public enum StyleInput: Sendable {
    case image(PlanarImage)
    case code(StyleCode)
}

/// The finished picture, how long inference took, and the time of each stage.
public struct StylizeResult: Sendable {
    /// The network's output, padded to its size multiple: the picture is its top-left
    /// `width` x `height`, read in place by `Stylizer.encode(_:options:)`.
    let output: Tensor
    public let width: Int
    public let height: Int
    /// Style encoding and the network (what `stylist bench` times).
    public let inferenceSeconds: Double
    public let flops: Double
    /// resize (when an input is over `maxSize`), color (with `preserveColor`), prepare (padding to
    /// tensors), style_encode, network.
    public let stages: StageTimings

    /// The picture as an image (values not clamped: encoders clamp), copied out of the network's
    /// output on each use. Encoding needs no copy: `Stylizer.encode(_:options:)`.
    public var image: PlanarImage { Stylizer.image(output, height: height, width: width) }

    /// The picture's planes in place, for the duration of `body`.
    func withRows<T>(_ body: (PlanarRows) throws -> T) rethrows -> T {
        try withExtendedLifetime(output) {
            try body(PlanarRows(width: width, height: height, rowStride: output.width, red: output.plane(0),
                                green: output.plane(1), blue: output.plane(2)))
        }
    }
}

/// Image in, image out around one network: resize to max_size, reflection-pad to the network's
/// size multiple, optional colour preservation, encode styles, stylize; the result is cropped back
/// (and clamped) as it is encoded.
public struct Stylizer: Sendable {
    /// Smallest accepted side for content and styles, in pixels after resizing.
    public static let minimumSide = 16

    public let network: StyleNetwork

    public init(network: StyleNetwork) {
        self.network = network
    }

    /// Downscales to fit `maxSize` (no upscaling).
    public static func fit(_ image: PlanarImage, maxSize: Int) -> PlanarImage {
        max(image.width, image.height) > maxSize ? image.resized(toFit: maxSize) : image
    }

    /// The code of a style image at the given options (resized as a job would resize it).
    public func encodeStyle(_ image: PlanarImage, maxSize: Int, ctx: RunContext = RunContext()) throws -> StyleCode {
        let style = Stylizer.fit(image, maxSize: maxSize)
        try Stylizer.checkSize(style, "style")
        return try network.encodeStyle(Stylizer.tensor(style), ctx)
    }

    /// Runs a whole stylization. `content` and style images are decoded but not yet resized.
    /// With `mask` (any size, from `regionMask` or `decodeMask`; spatial control) the first of
    /// exactly two styles applies where the mask is set (light) and the second elsewhere.
    /// Progress and cancellation go through `ctx` (checked between layers).
    public func stylize(content original: PlanarImage, styles: [StyleInput], mask maskRegions: RegionMask? = nil,
                        options: StylizeOptions, ctx: RunContext = RunContext()) throws -> StylizeResult {
        try options.validate(styleCount: styles.count, masked: maskRegions != nil)
        var stages = StageTimings()
        func fitted(_ image: PlanarImage) -> PlanarImage {
            max(image.width, image.height) > options.maxSize ? stages.time("resize") { Stylizer.fit(image, maxSize: options.maxSize) } : image
        }
        let content = fitted(original)
        try Stylizer.checkSize(content, "content")
        var prepared: [Int: PlanarImage] = [:]   // style index -> resized (and recoloured) image
        for (i, s) in styles.enumerated() {
            switch s {
            case .image(let img):
                var style = fitted(img)
                try Stylizer.checkSize(style, "style \(i + 1)")
                if options.preserveColor {
                    style = stages.time("color") { ColorTransfer.matchColors(of: style, to: content) }
                }
                prepared[i] = style
            case .code:
                if options.preserveColor {
                    throw PipelineError.invalidParameter("preserve_color needs the style images, not cached style codes")
                }
            }
        }

        let m = network.sizeMultiple
        let paddedHeight = (content.height + m - 1) / m * m, paddedWidth = (content.width + m - 1) / m * m
        let input = stages.time("prepare") { Stylizer.tensor(content, padToHeight: paddedHeight, width: paddedWidth) }
        let mask = stages.time("prepare") {
            maskRegions.map { Stylizer.fitMask($0, height: content.height, width: content.width,
                                               padToHeight: paddedHeight, width: paddedWidth) }
        }
        ctx.plannedFlops = network.plannedFlops(content: Size(height: paddedHeight, width: paddedWidth),
                                                styleSizes: prepared.values.map { Size(height: $0.height, width: $0.width) },
                                                alpha: options.alpha)
        var codes: [StyleCode] = []
        for (i, s) in styles.enumerated() {
            switch s {
            case .code(let code):
                guard code.architecture == network.architecture else {
                    throw PipelineError.invalidParameter("style code is for \(code.architecture), model is \(network.architecture)")
                }
                codes.append(code)
            case .image:
                let style = stages.time("prepare") { Stylizer.tensor(prepared[i]!) }
                codes.append(try stages.time("style_encode") { try run { try network.encodeStyle(style, ctx) } })
            }
        }
        let weights = options.styleWeights ?? [Float](repeating: 1, count: styles.count)
        let output = try stages.time("network") {
            try run {
                if let mask {
                    return try network.stylize(content: input, foreground: codes[0], background: codes[1], mask: mask, alpha: options.alpha, ctx)
                }
                return try network.stylize(content: input, styles: codes, weights: weights, alpha: options.alpha, ctx)
            }
        }
        return StylizeResult(output: output, width: content.width, height: content.height,
                             inferenceSeconds: stages["style_encode"] + stages["network"], flops: ctx.doneFlops, stages: stages)
    }

    /// Translates engine errors (cancellation, parameter errors) into pipeline errors.
    private func run<T>(_ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch is RunCanceled {
            throw PipelineError.canceled
        } catch let e as ParameterError {
            throw PipelineError.invalidParameter(e.description)
        }
    }

    static func checkSize(_ image: PlanarImage, _ what: String) throws {
        guard image.width >= minimumSide, image.height >= minimumSide else {
            throw PipelineError.invalidParameter("\(what) image is \(image.width)x\(image.height); at least \(minimumSide)x\(minimumSide) pixels are needed")
        }
    }

    /// The image as a 3-channel tensor, reflection-padded at the bottom and right to the given size.
    /// The rows are copied on every core: a copy this size is bound by one core's memory bandwidth.
    static func tensor(_ image: PlanarImage, padToHeight ph: Int? = nil, width pw: Int? = nil) -> Tensor {
        let h = image.height, w = image.width
        let th = ph ?? h, tw = pw ?? w
        let t = Tensor(channels: 3, height: th, width: tw)
        image.pixels.withUnsafeBufferPointer { src in
            Parallel.forRanges(3 * th, minChunk: 64) { rows in
                for i in rows {
                    let c = i / th, y = i % th
                    let row = src.baseAddress! + (c * h + reflect(y, h)) * w
                    let dst = t.plane(c) + y * tw
                    dst.update(from: row, count: w)
                    for x in w..<tw { dst[x] = row[reflect(x, w)] }
                }
            }
        }
        return t
    }

    /// A mask image as regions at its own size: luminance `0.299 R + 0.587 G + 0.114 B`
    /// at or above 0.5 is the foreground (the first style), below it the background (the second).
    public static func regionMask(_ image: PlanarImage) -> RegionMask {
        let n = image.planeSize
        var values = [UInt8](repeating: 0, count: n)
        image.pixels.withUnsafeBufferPointer { px in
            for i in 0..<n {
                let luma = 0.299 * px[i] + 0.587 * px[n + i] + 0.114 * px[2 * n + i]
                values[i] = luma >= 0.5 ? 1 : 0
            }
        }
        return RegionMask(height: image.height, width: image.width, values: values)
    }

    /// The mask at the content's processed size: sampled at pixel centres to the resized content's
    /// `height` x `width` (`src = floor((dst + 0.5) * src_size / dst_size)`), then reflection-padded
    /// to the network's size as the content is. (Thresholding before nearest sampling is the same as after.)
    public static func fitMask(_ mask: RegionMask, height h: Int, width w: Int, padToHeight ph: Int? = nil, width pw: Int? = nil) -> RegionMask {
        let th = ph ?? h, tw = pw ?? w
        let ys = RegionMask.centreIndices(h, mask.height), xs = RegionMask.centreIndices(w, mask.width)
        var values = [UInt8](repeating: 0, count: th * tw)
        for y in 0..<th {
            let row = ys[reflect(y, h)] * mask.width
            for x in 0..<tw { values[y * tw + x] = mask.values[row + xs[reflect(x, w)]] }
        }
        return RegionMask(height: th, width: tw, values: values)
    }

    /// The top-left `height` x `width` of a 3-channel tensor as an image (values not clamped: encoders clamp).
    static func image(_ t: Tensor, height: Int, width: Int) -> PlanarImage {
        var pixels = [Float](repeating: 0, count: 3 * height * width)
        pixels.withUnsafeMutableBufferPointer { dst in
            for c in 0..<3 {
                for y in 0..<height {
                    (dst.baseAddress! + (c * height + y) * width).update(from: t.plane(c) + y * t.width, count: width)
                }
            }
        }
        return PlanarImage(width: width, height: height, pixels: pixels)
    }
}
