import CImageCodecs
import Foundation

/// Writes `PlanarImage`s as 8-bit RGB PNG or JPEG.
public enum ImageEncoder {
    /// The largest side a JPEG can have (libjpeg's JPEG_MAX_DIMENSION).
    public static let jpegMaxSide = 65_500

    /// Encodes as an 8-bit RGB PNG, each value quantised with `quantize`: Paeth-filtered rows,
    /// quantised and deflated in horizontal bands on up to `threads` threads (default: every core)
    /// into one standard zlib stream. The image must have at least one pixel.
    public static func png(_ image: PlanarImage, threads: Int = ProcessInfo.processInfo.activeProcessorCount) throws -> [UInt8] {
        try image.withRows { try png($0, threads: threads) }
    }

    /// `png(_:threads:)` of planes held elsewhere (a tensor's), read in place.
    public static func png(_ rows: PlanarRows, threads: Int = ProcessInfo.processInfo.activeProcessorCount) throws -> [UInt8] {
        let t = Int32(min(max(threads, 1), 16))
        return try run(rows, sizeLimit: Int(Int32.max)) { w, h, out, outLen, err, errLen in
            sc_png_encode(rows.red, rows.green, rows.blue, rows.rowStride, w, h, t, out, outLen, err, errLen)
        }
    }

    /// Encodes as a baseline JPEG with `quality` 1...100 (clamped); 4:4:4 chroma at quality >= 90,
    /// 4:2:0 below. Throws `tooLarge(limit: 65500)` if a side is over 65500 pixels.
    public static func jpeg(_ image: PlanarImage, quality: Int = 92) throws -> [UInt8] {
        try image.withRows { try jpeg($0, quality: quality) }
    }

    /// `jpeg(_:quality:)` of planes held elsewhere (a tensor's), read in place.
    public static func jpeg(_ rows: PlanarRows, quality: Int = 92) throws -> [UInt8] {
        if rows.width > jpegMaxSide || rows.height > jpegMaxSide {
            throw ImageCodecError.tooLarge(width: rows.width, height: rows.height, limit: jpegMaxSide)
        }
        let q = Int32(min(max(quality, 1), 100))
        let rgb = interleavedRGB8(rows)
        return try run(rows, sizeLimit: jpegMaxSide) { w, h, out, outLen, err, errLen in
            rgb.withUnsafeBufferPointer { sc_jpeg_encode($0.baseAddress!, w, h, q, out, outLen, err, errLen) }
        }
    }

    /// Encodes in `format` (JPEG at the default quality).
    public static func encode(_ image: PlanarImage, as format: ImageFormat) throws -> [UInt8] {
        switch format {
        case .png: return try png(image)
        case .jpeg: return try jpeg(image)
        }
    }

    /// The 8-bit quantisation every encoder uses: clamp to [0,1], then floor(x*255 + 0.5).
    /// NaN maps to 0. Arithmetic is in Float, as in a float32 reference implementation.
    @inline(__always)
    public static func quantize(_ x: Float) -> UInt8 {
        // `x > 0` is false for NaN, so NaN and negatives (and -0) give 0.
        let c: Float = x > 0 ? (x < 1 ? x : 1) : 0
        // c*255 + 0.5 is in [0.5, 255.5], so truncation toward zero is floor (and cheaper).
        return UInt8(truncatingIfNeeded: Int32(c * 255 + 0.5))
    }

    /// Planar float -> packed 8-bit RGB (row-major, 3 bytes per pixel), each value `quantize`d
    /// (by the C shim, where the loop vectorises).
    public static func interleavedRGB8(_ image: PlanarImage) -> [UInt8] {
        precondition(image.pixels.count == 3 * image.width * image.height,
                     "PlanarImage: \(image.pixels.count) values for \(image.width)x\(image.height)x3")
        return image.withRows { interleavedRGB8($0) }
    }

    /// `interleavedRGB8` of planes held elsewhere, row by row (a row stride may exceed the width).
    /// A large image is split into bands of rows quantised on every core at once.
    public static func interleavedRGB8(_ rows: PlanarRows) -> [UInt8] {
        let w = rows.width, h = rows.height
        return [UInt8](unsafeUninitializedCapacity: 3 * w * h) { out, count in
            guard w > 0, h > 0, let d = out.baseAddress else { count = 0; return }
            func quantize(_ ys: Range<Int>) {
                if rows.rowStride == w {
                    let at = ys.lowerBound * w
                    sc_quantize_rgb8(rows.red + at, rows.green + at, rows.blue + at, w * ys.count, d + 3 * at)
                } else {
                    for y in ys {
                        let at = y * rows.rowStride
                        sc_quantize_rgb8(rows.red + at, rows.green + at, rows.blue + at, w, d + 3 * w * y)
                    }
                }
            }
            let bands = min(ProcessInfo.processInfo.activeProcessorCount, max(1, w * h / quantizeBandPixels), h)
            if bands <= 1 {
                quantize(0..<h)
            } else {
                DispatchQueue.concurrentPerform(iterations: bands) { i in quantize(h * i / bands..<h * (i + 1) / bands) }
            }
            count = 3 * w * h
        }
    }

    /// The fewest pixels worth quantising on another core.
    private static let quantizeBandPixels = 1 << 16

    private typealias EncodeFn = (UInt32, UInt32,
                                  UnsafeMutablePointer<UnsafeMutablePointer<UInt8>?>,
                                  UnsafeMutablePointer<Int>, UnsafeMutablePointer<CChar>, Int) -> Int32

    /// `sizeLimit`: what `tooLarge` reports if the encoder refuses the size or runs out of memory.
    private static func run(_ image: PlanarRows, sizeLimit: Int, _ encode: EncodeFn) throws -> [UInt8] {
        precondition(image.width > 0 && image.height > 0, "cannot encode an empty \(image.width)x\(image.height) image")
        precondition(image.width <= Int(Int32.max) && image.height <= Int(Int32.max), "image side over 2^31-1")
        var out: UnsafeMutablePointer<UInt8>? = nil
        var outLen = 0
        var err = [CChar](repeating: 0, count: 256)
        let errLen = err.count
        let status: Int32 = err.withUnsafeMutableBufferPointer { e in
            encode(UInt32(image.width), UInt32(image.height), &out, &outLen, e.baseAddress!, errLen)
        }
        defer { sc_free(out) }
        guard status == SC_OK, let out else {
            let msg = String(decoding: err.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            if status == SC_ERR_TOO_LARGE || status == SC_ERR_NOMEM {
                throw ImageCodecError.tooLarge(width: image.width, height: image.height, limit: sizeLimit)
            }
            // Not reachable with valid input; reported rather than trapped.
            throw ImageCodecError.corrupt(msg.isEmpty ? "encoder failed" : msg)
        }
        return Array(UnsafeBufferPointer(start: out, count: outLen))
    }
}

/// Three float planes (red, green, blue) that someone else owns, e.g. a tensor's: row y of a
/// plane starts `y * rowStride` values after its start. Valid only while the owner keeps them.
public struct PlanarRows {
    public let width: Int
    public let height: Int
    public let rowStride: Int
    public let red: UnsafePointer<Float>
    public let green: UnsafePointer<Float>
    public let blue: UnsafePointer<Float>

    public init(width: Int, height: Int, rowStride: Int, red: UnsafePointer<Float>, green: UnsafePointer<Float>,
                blue: UnsafePointer<Float>) {
        precondition(width >= 0 && height >= 0 && rowStride >= width, "PlanarRows: \(width)x\(height), row stride \(rowStride)")
        self.width = width
        self.height = height
        self.rowStride = rowStride
        self.red = red
        self.green = green
        self.blue = blue
    }
}

extension PlanarImage {
    /// The image's planes as `PlanarRows`, for the duration of `body`.
    func withRows<T>(_ body: (PlanarRows) throws -> T) rethrows -> T {
        let n = width * height
        return try pixels.withUnsafeBufferPointer { p in
            // An empty image still needs a valid pointer; its rows are never read.
            var none: Float = 0
            return try withUnsafePointer(to: &none) { empty in
                let base = p.baseAddress ?? empty
                return try body(PlanarRows(width: width, height: height, rowStride: width, red: base, green: base + n,
                                           blue: base + 2 * n))
            }
        }
    }
}
