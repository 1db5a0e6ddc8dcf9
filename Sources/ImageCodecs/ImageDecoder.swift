import CImageCodecs
import Foundation

/// Reads PNG and JPEG files into `PlanarImage`s.
public enum ImageDecoder {
    /// The default pixel limit of `decode` (40 megapixels).
    public static let defaultMaxPixels = 40_000_000

    private static let pngSignature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
    private static let jpegSignature: [UInt8] = [0xFF, 0xD8, 0xFF]
    private static let errorCapacity = 512

    /// The format announced by the magic bytes, or nil when they are not PNG or JPEG.
    public static func format(of bytes: [UInt8]) -> ImageFormat? {
        if bytes.starts(with: pngSignature) { return .png }
        if bytes.starts(with: jpegSignature) { return .jpeg }
        return nil
    }

    /// Sniffs the format by magic bytes and reads the header only; sizes are after EXIF orientation.
    public static func probe(_ bytes: [UInt8]) throws -> ImageInfo {
        let format = try sniff(bytes)
        var info = sc_info()
        var err = [CChar](repeating: 0, count: errorCapacity)
        let errLen = err.count
        let status: Int32 = bytes.withUnsafeBufferPointer { buf in
            err.withUnsafeMutableBufferPointer { e in
                switch format {
                case .png: return sc_png_probe(buf.baseAddress, buf.count, &info, e.baseAddress, errLen)
                case .jpeg: return sc_jpeg_probe(buf.baseAddress, buf.count, &info, e.baseAddress, errLen)
                }
            }
        }
        // SC_ERR_TOO_LARGE from a probe means libjpeg refused the SOF size (> 65500 a side),
        // but the header was read: report its size, decode() will refuse it.
        guard status == SC_OK || status == SC_ERR_TOO_LARGE else {
            throw mapError(status, message(err), info: info, limit: 0)
        }
        let (w, h) = orientedSize(info)
        return ImageInfo(format: format, width: w, height: h)
    }

    /// Decodes PNG or JPEG bytes to RGB planes in [0,1]: grey -> 3 equal channels, alpha dropped
    /// (not composited), palette expanded, 8-bit as v/255, 16-bit as v/65535, JPEG EXIF
    /// orientation applied. Throws `tooLarge` from the header alone if the image has more than
    /// `maxPixels` pixels, before any pixel buffer is allocated.
    public static func decode(_ bytes: [UInt8], maxPixels: Int = 40_000_000) throws -> PlanarImage {
        try decode(bytes, format: try sniff(bytes), maxPixels: maxPixels, atLeast: nil)
    }

    /// What `decode(bytes, maxPixels:).resized(toFit: maxSide, filter:)` gives, at the same size,
    /// without the full decode when it is not needed: a JPEG at least twice as large as the fitted
    /// size is decoded with libjpeg-turbo's scaled IDCT (1/2, 1/4 or 1/8, the smallest whose
    /// output still covers the fitted size) and then resized. The pixel limit applies to the
    /// header's size, as in `decode`.
    public static func decode(_ bytes: [UInt8], maxPixels: Int = 40_000_000, fittingTo maxSide: Int,
                              filter: ResizeFilter = .bicubic) throws -> PlanarImage {
        precondition(maxSide > 0, "decode(fittingTo:): maxSide must be positive, got \(maxSide)")
        let format = try sniff(bytes)
        var target: (width: Int, height: Int)?
        if format == .jpeg {
            // The header alone (no pixels) gives the size the result must have.
            let info = try probe(bytes)
            let size = PlanarImage.fittingSize(width: info.width, height: info.height, maxSide: maxSide)
            target = size
            if size.width > Int(UInt32.max) || size.height > Int(UInt32.max) { target = nil }
        }
        return try withDecoded(bytes, format: format, maxPixels: maxPixels, atLeast: target) { img, raw in
            let w = Int(img.width), h = Int(img.height)
            let size = target ?? PlanarImage.fittingSize(width: w, height: h, maxSide: maxSide)
            // An 8-bit image in stored orientation that shrinks is resized straight from its bytes.
            if img.info.bit_depth != 16 && !(2...8).contains(Int(img.info.orientation)) && size.width < w && size.height < h,
               let image = PlanarImage.downscaled(interleavedRGB8: raw.assumingMemoryBound(to: UInt8.self), width: w, height: h,
                                                  toWidth: size.width, height: size.height, filter: filter) {
                return image
            }
            let image = planarize(img, raw)
            guard target != nil else { return image.resized(toFit: maxSide, filter: filter) }
            return image.resized(width: size.width, height: size.height, filter: filter)
        }
    }

    /// Decodes in `format`; with `atLeast` (display orientation), a JPEG may come out smaller
    /// than its header's size, down to that size.
    static func decode(_ bytes: [UInt8], format: ImageFormat, maxPixels: Int,
                               atLeast: (width: Int, height: Int)?) throws -> PlanarImage {
        try withDecoded(bytes, format: format, maxPixels: maxPixels, atLeast: atLeast) { planarize($0, $1) }
    }

    /// Decodes in `format` (as `decode(_:format:maxPixels:atLeast:)`) and hands the decoder's
    /// interleaved samples (stored orientation, 8 or 16 bits each) to `body`, for its duration.
    private static func withDecoded<T>(_ bytes: [UInt8], format: ImageFormat, maxPixels: Int,
                                       atLeast: (width: Int, height: Int)?,
                                       _ body: (sc_image, UnsafeMutableRawPointer) throws -> T) throws -> T {
        var img = sc_image()
        var err = [CChar](repeating: 0, count: errorCapacity)
        let errLen = err.count
        let limit = UInt64(max(0, maxPixels))
        let status: Int32 = bytes.withUnsafeBufferPointer { buf in
            err.withUnsafeMutableBufferPointer { e in
                switch (format, atLeast) {
                case (.png, _): return sc_png_decode(buf.baseAddress, buf.count, limit, &img, e.baseAddress, errLen)
                case (.jpeg, nil): return sc_jpeg_decode(buf.baseAddress, buf.count, limit, &img, e.baseAddress, errLen)
                case (.jpeg, let size?):
                    return sc_jpeg_decode_scaled(buf.baseAddress, buf.count, limit, UInt32(size.width), UInt32(size.height),
                                                 &img, e.baseAddress, errLen)
                }
            }
        }
        defer { sc_free(img.pixels) }
        guard status == SC_OK, let raw = img.pixels else {
            throw mapError(status == SC_OK ? SC_ERR_CORRUPT : status, message(err), info: img.info, limit: maxPixels)
        }
        let w = Int(img.width), h = Int(img.height)
        precondition(img.size == w * h * (img.info.bit_depth == 16 ? 6 : 3))
        return try body(img, raw)
    }

    /// The decoder's samples as planes in display orientation.
    private static func planarize(_ img: sc_image, _ raw: UnsafeMutableRawPointer) -> PlanarImage {
        let w = Int(img.width), h = Int(img.height)
        let orientation = Int(img.info.orientation)
        if img.info.bit_depth == 16 {
            return planarize(raw.assumingMemoryBound(to: UInt16.self), width: w, height: h, orientation: orientation,
                             value: { Float($0) / 65535 })
        } else {
            return eightBitLevels.withUnsafeBufferPointer { levels in
                planarize(raw.assumingMemoryBound(to: UInt8.self), width: w, height: h, orientation: orientation,
                          value: { levels[Int($0)] }, row: convertRGB8Row)
            }
        }
    }

    /// `n` pixels of interleaved 8-bit RGB into `n` values of each plane, each sample v as v/255
    /// (the same values as `eightBitLevels`): the one row conversion of `planarize` and of the
    /// fused downscale, vectorised in C.
    @inline(__always)
    static func convertRGB8Row(_ src: UnsafePointer<UInt8>, count n: Int, red r: UnsafeMutablePointer<Float>,
                               green g: UnsafeMutablePointer<Float>, blue b: UnsafeMutablePointer<Float>) {
        sc_rgb8_to_planes(src, n, r, g, b)
    }

    /// Reads a file and decodes it like `decode(_:maxPixels:)`; file system errors are rethrown as is.
    public static func decode(contentsOf path: String, maxPixels: Int = 40_000_000) throws -> PlanarImage {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        return try decode([UInt8](data), maxPixels: maxPixels)
    }

    // MARK: - Internals

    private static func sniff(_ bytes: [UInt8]) throws -> ImageFormat {
        if let f = format(of: bytes) { return f }
        if bytes.isEmpty { throw ImageCodecError.unsupportedFormat("empty input, expected a PNG or JPEG image") }
        // A strict prefix of a signature is a truncated file, not another format.
        if bytes.count < pngSignature.count, pngSignature.starts(with: bytes) {
            throw ImageCodecError.corrupt("invalid PNG: truncated signature")
        }
        if bytes.count < jpegSignature.count, jpegSignature.starts(with: bytes) {
            throw ImageCodecError.corrupt("invalid JPEG: truncated signature")
        }
        throw ImageCodecError.unsupportedFormat(describeUnsupported(bytes))
    }

    private static func describeUnsupported(_ b: [UInt8]) -> String {
        func has(_ s: String, at offset: Int = 0) -> Bool {
            let u = Array(s.utf8)
            return b.count >= offset + u.count && Array(b[offset..<(offset + u.count)]) == u
        }
        let name: String?
        if has("GIF87a") || has("GIF89a") { name = "GIF" }
        else if has("RIFF") && has("WEBP", at: 8) { name = "WebP" }
        else if has("BM") { name = "BMP" }
        else if b.starts(with: [0x49, 0x49, 0x2A, 0x00]) || b.starts(with: [0x4D, 0x4D, 0x00, 0x2A]) { name = "TIFF" }
        else if has("ftyp", at: 4) && (has("avif", at: 8) || has("avis", at: 8)) { name = "AVIF" }
        else if has("ftyp", at: 4) && (has("heic", at: 8) || has("heix", at: 8) || has("mif1", at: 8)) { name = "HEIF/HEIC" }
        else if b.starts(with: [0x00, 0x00, 0x00, 0x0C, 0x6A, 0x50, 0x20, 0x20]) { name = "JPEG 2000" }
        else if b.starts(with: [0xFF, 0x0A]) { name = "JPEG XL" }
        else if b.starts(with: [0xFF, 0xD8]) { name = nil } // SOI without a marker after it
        else { name = nil }
        if let name { return "\(name) images are not supported; send PNG or JPEG" }
        return "not a PNG or JPEG image"
    }

    private static func message(_ err: [CChar]) -> String {
        let bytes = err.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
        let s = String(decoding: bytes, as: UTF8.self)
        return s.isEmpty ? "unknown error" : s
    }

    private static func orientedSize(_ info: sc_info) -> (Int, Int) {
        let w = Int(info.width), h = Int(info.height)
        return info.orientation >= 5 && info.orientation <= 8 ? (h, w) : (w, h)
    }

    private static func mapError(_ status: Int32, _ message: String, info: sc_info, limit: Int) -> ImageCodecError {
        let (w, h) = orientedSize(info)
        switch status {
        case SC_ERR_TOO_LARGE:
            return .tooLarge(width: w, height: h, limit: limit)
        case SC_ERR_NOMEM where w > 0 && h > 0:
            // The header was fine but memory ran out: the image is too large for this machine.
            return .tooLarge(width: w, height: h, limit: limit)
        case SC_ERR_UNSUPPORTED:
            return .unsupportedFormat(message)
        default:
            return .corrupt(message)
        }
    }

    /// v/255 for every 8-bit level v: a table lookup instead of a division per sample, where
    /// samples are read one by one (mirrored and transposed orientations).
    private static let eightBitLevels: [Float] = (0...255).map { Float($0) / 255 }

    /// Interleaved RGB rows (stored orientation) -> planar RGB in display orientation, each
    /// sample v becoming `value(v)` (exactly v/255 or v/65535). Where source rows stay rows in
    /// the same order, `row`, when given, converts each whole row the same way.
    ///
    /// Source pixel (x, y) goes to destination index `base + x*dx + y*dy` of each plane; the
    /// eight EXIF orientations are the eight sign/transpose combinations of (dx, dy).
    @inline(__always)
    private static func planarize<S: FixedWidthInteger & UnsignedInteger>(
        _ src: UnsafePointer<S>, width w: Int, height h: Int, orientation: Int, value: (S) -> Float,
        row: ((UnsafePointer<S>, Int, UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>) -> Void)? = nil
    ) -> PlanarImage {
        let o = (1...8).contains(orientation) ? orientation : 1
        let transposed = o >= 5
        let ow = transposed ? h : w, oh = transposed ? w : h
        let base: Int, dx: Int, dy: Int
        switch o {
        case 2: (base, dx, dy) = (w - 1, -1, w)                       // mirror horizontally
        case 3: (base, dx, dy) = ((h - 1) * w + w - 1, -1, -w)        // rotate 180
        case 4: (base, dx, dy) = ((h - 1) * w, 1, -w)                 // mirror vertically
        case 5: (base, dx, dy) = (0, h, 1)                            // transpose
        case 6: (base, dx, dy) = (h - 1, h, -1)                       // rotate 90 clockwise
        case 7: (base, dx, dy) = ((w - 1) * h + h - 1, -h, -1)        // transverse
        case 8: (base, dx, dy) = ((w - 1) * h, -h, 1)                 // rotate 90 counter-clockwise
        default: (base, dx, dy) = (0, 1, w)
        }
        let n = w * h
        let pixels = [Float](unsafeUninitializedCapacity: 3 * n) { buf, count in
            guard n > 0, let out = buf.baseAddress else { count = 0; return }
            let r = out, g = out + n, b = out + 2 * n
            if dx == 1 {
                // Source rows are destination rows (orientations 1 and 4).
                for y in 0..<h {
                    let d = base + y * dy
                    if let row {
                        row(src + y * w * 3, w, r + d, g + d, b + d)
                        continue
                    }
                    var s = src + y * w * 3 // advanced, not indexed: no overflow checks
                    for x in 0..<w {
                        r[d + x] = value(s[0])
                        g[d + x] = value(s[1])
                        b[d + x] = value(s[2])
                        s += 3
                    }
                }
            } else if dx == -1 {
                // Mirrored rows (orientations 2 and 3).
                for y in 0..<h {
                    let s = src + y * w * 3
                    let d = base + y * dy
                    for x in 0..<w {
                        r[d - x] = value(s[3 * x])
                        g[d - x] = value(s[3 * x + 1])
                        b[d - x] = value(s[3 * x + 2])
                    }
                }
            } else {
                // Source columns become destination rows: walk 32x32 tiles so both the
                // strided reads and the contiguous writes stay in cache.
                let tile = 32
                for y0 in stride(from: 0, to: h, by: tile) {
                    let y1 = min(y0 + tile, h)
                    for x0 in stride(from: 0, to: w, by: tile) {
                        let x1 = min(x0 + tile, w)
                        for x in x0..<x1 {
                            var d = base + x * dx + y0 * dy
                            var s = src + (y0 * w + x) * 3
                            for _ in y0..<y1 {
                                r[d] = value(s[0])
                                g[d] = value(s[1])
                                b[d] = value(s[2])
                                s += 3 * w
                                d += dy
                            }
                        }
                    }
                }
            }
            count = 3 * n
        }
        return PlanarImage(width: ow, height: oh, pixels: pixels)
    }
}
