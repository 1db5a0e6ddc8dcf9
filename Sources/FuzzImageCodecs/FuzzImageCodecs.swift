// libFuzzer target for the PNG/JPEG decoders behind the CImageCodecs shim (built only with
// STYLIST_FUZZ=1; see FUZZING.md).
//
// The whole input is an image file: `ImageDecoder.probe` (header only) and `ImageDecoder.decode`
// with a 0.25-megapixel limit. Invariants: no trap, no ASan report (the shim is instrumented;
// the system libpng/libjpeg are not); a decoded image has 3*w*h samples in [0, 1], w*h within
// the limit, and the probe of the same bytes succeeded with the same size.
import ImageCodecs

@inline(never)
func check(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String) {
    if !condition() { fatalError("invariant violated: \(message())") }
}

let maxPixels = 250_000

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let info = try? ImageDecoder.probe(bytes)
    if let info {
        check(info.width >= 0 && info.height >= 0, "probe size \(info.width)x\(info.height)")
        check(info.format == ImageDecoder.format(of: bytes), "probe format \(info.format)")
    }
    guard let image = try? ImageDecoder.decode(bytes, maxPixels: maxPixels) else { return 0 }
    check(image.width > 0 && image.height > 0, "decoded \(image.width)x\(image.height)")
    check(image.width * image.height <= maxPixels, "decoded \(image.width)x\(image.height) over the limit")
    check(image.pixels.count == 3 * image.width * image.height, "\(image.pixels.count) samples for \(image.width)x\(image.height)")
    check(image.pixels.allSatisfy { $0 >= 0 && $0 <= 1 }, "a sample outside [0, 1]")
    guard let info else { fatalError("decode succeeded but probe failed") }
    check(info.width == image.width && info.height == image.height,
          "probe says \(info.width)x\(info.height), decode gives \(image.width)x\(image.height)")
    return 0
}
