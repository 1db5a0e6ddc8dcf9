/// ImageCodecs: PNG/JPEG decoding and encoding to RGB float planes.

/// An image file format this module reads and writes.
public enum ImageFormat: String, Sendable, Codable, CaseIterable {
    case png
    case jpeg

    /// The media type to send in `Content-Type` (`image/png`, `image/jpeg`).
    public var mimeType: String {
        switch self {
        case .png: return "image/png"
        case .jpeg: return "image/jpeg"
        }
    }
}

/// What an image header says: its format and display size (after EXIF orientation).
public struct ImageInfo: Sendable, Equatable {
    public let format: ImageFormat
    public let width: Int
    public let height: Int

    /// Creates an `ImageInfo` (mostly useful in tests).
    public init(format: ImageFormat, width: Int, height: Int) {
        self.format = format
        self.width = width
        self.height = height
    }
}

/// RGB float image, planar CHW (3 planes of width*height), values nominally in [0,1].
public struct PlanarImage: Sendable, Equatable {
    public var width: Int
    public var height: Int
    /// Red plane, then green, then blue; each row-major, `width * height` values.
    public var pixels: [Float]

    /// Wraps existing planes; `pixels.count` must be `3 * width * height`.
    public init(width: Int, height: Int, pixels: [Float]) {
        precondition(width >= 0 && height >= 0, "negative image size")
        precondition(pixels.count == 3 * width * height,
                     "PlanarImage: \(pixels.count) values for \(width)x\(height)x3")
        self.width = width
        self.height = height
        self.pixels = pixels
    }

    /// A `width` x `height` image filled with one colour.
    public init(width: Int, height: Int, fill: (r: Float, g: Float, b: Float) = (0, 0, 0)) {
        precondition(width >= 0 && height >= 0, "negative image size")
        let n = width * height
        var px = [Float](repeating: fill.r, count: 3 * n)
        if fill.g != fill.r { for i in n..<(2 * n) { px[i] = fill.g } }
        if fill.b != fill.r { for i in (2 * n)..<(3 * n) { px[i] = fill.b } }
        self.init(width: width, height: height, pixels: px)
    }

    /// Number of values in one plane (`width * height`).
    public var planeSize: Int { width * height }

    /// The (r, g, b) values at column `x`, row `y`.
    public func pixel(x: Int, y: Int) -> (r: Float, g: Float, b: Float) {
        precondition(x >= 0 && x < width && y >= 0 && y < height, "pixel (\(x), \(y)) outside \(width)x\(height)")
        let i = y * width + x, n = planeSize
        return (pixels[i], pixels[n + i], pixels[2 * n + i])
    }
}

/// Why an image could not be read or written.
public enum ImageCodecError: Error, Equatable, CustomStringConvertible {
    /// Not PNG/JPEG, or a variant we do not decode such as 12-bit JPEG (HTTP 415).
    case unsupportedFormat(String)
    /// Truncated or invalid data (HTTP 422).
    case corrupt(String)
    /// Over the pixel limit, detected from the header before decoding (HTTP 413).
    case tooLarge(width: Int, height: Int, limit: Int)

    public var description: String {
        switch self {
        case .unsupportedFormat(let why): return "unsupported image format: \(why)"
        case .corrupt(let why): return "corrupt image: \(why)"
        case .tooLarge(let w, let h, let limit):
            let (pixels, overflow) = w.multipliedReportingOverflow(by: h)
            return "image too large: \(w)x\(h) is \(overflow ? "too many" : String(pixels)) pixels, the limit is \(limit)"
        }
    }
}
