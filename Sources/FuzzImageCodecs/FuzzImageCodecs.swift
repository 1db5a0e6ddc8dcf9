// libFuzzer target for the PNG/JPEG decoders behind the CImageCodecs shim and the resampling
// after them (built only with STYLIST_FUZZ=1; see FUZZING.md).
//
// The whole input is an image file: `ImageDecoder.probe` (header only), `ImageDecoder.decode`
// with a 0.25-megapixel limit, `ImageDecoder.decode(_:fittingTo:filter:)` (the fused decode and
// downscale, the C resample loops, a JPEG's scaled IDCT) and `resized(width:height:filter:)` of
// its result, these two for images of at most 16,384 pixels (by the header). The fitting side,
// the second size and both filters come from a hash of the whole input, so the committed seeds
// stay plain image files and bytes after the image's end (which both decoders ignore) choose
// them. Every size is at most 64 a side, so the extra work per input is one more decode of a
// small image and resampling into smaller ones.
//
// Invariants: no trap, no ASan report (the shim is instrumented; the system libpng/libjpeg are
// not); a decoded image has 3*w*h samples in [0, 1], w*h within the limit, and the probe of the
// same bytes succeeded with the same size; a fitted image has the size `fittingSize` gives for
// the probed size, finite samples within the filter's reach of [0, 1], and for a PNG exactly
// the values of the full decode resized (the fused path's promise); a resized image has the
// asked size and samples within the filter's reach of its source's range.
import ImageCodecs

@inline(never)
func check(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String) {
    if !condition() { fatalError("invariant violated: \(message())") }
}

let maxPixels = 250_000
/// The largest image (header size) also decoded fitted and resized.
let fitMaxPixels = 16_384
/// The largest fitting side and resize target side: small, so the extra paths cost little.
let maxDerivedSide = 64

/// FNV-1a over the input: the parameters of the fitted decode and the resize.
func hash(_ bytes: [UInt8]) -> UInt64 {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    for b in bytes { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01b3 }
    return h
}

/// How far outside its source's range a resampled sample may lie, for a source range of
/// `spread`. Area averaging is a convex combination (rounding only); the bicubic kernel's
/// negative lobes overshoot by a fraction of the range on each of its two passes, well under
/// the range itself.
func slack(_ filter: ResizeFilter, spread: Float) -> Float {
    filter == .area ? 1e-3 : spread + 1e-3
}

/// The smallest and largest sample, and whether every sample is finite: one plain loop, since a
/// `check` per sample would cost more than the resampling it checks.
func extent(_ image: PlanarImage) -> (lo: Float, hi: Float, finite: Bool) {
    var lo = Float.infinity, hi = -Float.infinity, finite = true
    for v in image.pixels {
        finite = finite && v.isFinite
        lo = min(lo, v)
        hi = max(hi, v)
    }
    return (lo, hi, finite)
}

/// Checks `image`'s samples are finite and within `slack` of [lo, hi].
func checkRange(_ image: PlanarImage, _ lo: Float, _ hi: Float, slack: Float, _ what: @autoclosure () -> String) {
    let e = extent(image)
    check(e.finite && e.lo >= lo - slack && e.hi <= hi + slack,
          "\(what()): samples in [\(e.lo), \(e.hi)]\(e.finite ? "" : " (not all finite)"), allowed [\(lo), \(hi)] +- \(slack)")
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let info = try? ImageDecoder.probe(bytes)
    if let info {
        check(info.width >= 0 && info.height >= 0, "probe size \(info.width)x\(info.height)")
        check(info.format == ImageDecoder.format(of: bytes), "probe format \(info.format)")
    }
    let image = try? ImageDecoder.decode(bytes, maxPixels: maxPixels)
    if let image {
        check(image.width > 0 && image.height > 0, "decoded \(image.width)x\(image.height)")
        check(image.width * image.height <= maxPixels, "decoded \(image.width)x\(image.height) over the limit")
        check(image.pixels.count == 3 * image.width * image.height, "\(image.pixels.count) samples for \(image.width)x\(image.height)")
        check(image.pixels.allSatisfy { $0 >= 0 && $0 <= 1 }, "a sample outside [0, 1]")
        guard let info else { fatalError("decode succeeded but probe failed") }
        check(info.width == image.width && info.height == image.height,
              "probe says \(info.width)x\(info.height), decode gives \(image.width)x\(image.height)")
    }

    // Tried even when the full decode failed (a JPEG's scaled decode is a path of its own in the
    // shim), but only on small images: a large one would add a large decode and resampling to
    // the input's cost and reach no path a small one does not.
    guard let info, info.width * info.height <= fitMaxPixels else { return 0 }
    let h = hash(bytes)
    let side = 1 + Int(h % UInt64(maxDerivedSide))
    let fitFilter: ResizeFilter = (h >> 6) & 1 == 0 ? .bicubic : .area
    let fitted = try? ImageDecoder.decode(bytes, maxPixels: fitMaxPixels, fittingTo: side, filter: fitFilter)
    if info.format == .png {
        // A PNG's fitted decode is the same libpng decode as the full one.
        check((fitted == nil) == (image == nil), "PNG: full decode \(image == nil ? "failed" : "succeeded"), fitted decode did not")
    }
    guard let fitted else { return 0 }
    check(fitted.width > 0 && fitted.height > 0, "fitted \(fitted.width)x\(fitted.height)")
    let expected = PlanarImage.fittingSize(width: info.width, height: info.height, maxSide: side)
    check(fitted.width == expected.width && fitted.height == expected.height,
          "fitted \(info.width)x\(info.height) to \(side): \(fitted.width)x\(fitted.height), expected \(expected.width)x\(expected.height)")
    check(fitted.pixels.count == 3 * fitted.width * fitted.height,
          "fitted: \(fitted.pixels.count) samples for \(fitted.width)x\(fitted.height)")
    checkRange(fitted, 0, 1, slack: slack(fitFilter, spread: 1), "fitted to \(side), \(fitFilter)")
    if info.format == .png, let image {
        let resized = image.resized(toFit: side, filter: fitFilter)
        check(fitted.pixels.map(\.bitPattern) == resized.pixels.map(\.bitPattern),
              "PNG \(image.width)x\(image.height) fitted to \(side), \(fitFilter): values differ from the full decode resized")
    }

    let width = 1 + Int((h >> 8) % UInt64(maxDerivedSide)), height = 1 + Int((h >> 16) % UInt64(maxDerivedSide))
    let resizeFilter: ResizeFilter = (h >> 7) & 1 == 0 ? .bicubic : .area
    let resized = fitted.resized(width: width, height: height, filter: resizeFilter)
    check(resized.width == width && resized.height == height,
          "resized \(fitted.width)x\(fitted.height) to \(width)x\(height): got \(resized.width)x\(resized.height)")
    check(resized.pixels.count == 3 * width * height, "resized: \(resized.pixels.count) samples for \(width)x\(height)")
    let source = extent(fitted)
    checkRange(resized, source.lo, source.hi, slack: slack(resizeFilter, spread: source.hi - source.lo),
               "\(fitted.width)x\(fitted.height) resized to \(width)x\(height), \(resizeFilter)")
    return 0
}
