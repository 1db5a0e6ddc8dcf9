import CImageCodecs
import XCTest
@testable import ImageCodecs

/// The PNG writer's own deflate (Huffman blocks, byte runs, stored blocks for noise, bands joined
/// by sync flushes), read back by libpng itself: not only by our fast decoder, which inflates with
/// libdeflate, but by the reader every other program uses.
final class PNGDeflateTests: XCTestCase {
    enum Content: CaseIterable { case constant, gradient, noise, halfNoiseHalfFlat }

    /// A `width` x `height` image of exact 8-bit levels, and those levels as packed RGB bytes.
    private func image(_ content: Content, width: Int, height: Int) -> (PlanarImage, [UInt8]) {
        var state = UInt64(width * 31 + height)
        var rgb = [UInt8](repeating: 0, count: 3 * width * height)
        for y in 0..<height {
            for x in 0..<width {
                for c in 0..<3 {
                    state = state &* 6364136223846793005 &+ 1442695040888963407
                    let v: Int
                    switch content {
                    case .constant: v = 77 + c
                    case .gradient: v = (x * 255 / max(width - 1, 1) + y + 40 * c) % 256
                    case .noise: v = Int(state >> 56)
                    case .halfNoiseHalfFlat: v = y < height / 2 ? Int(state >> 56) : 200
                    }
                    rgb[3 * (y * width + x) + c] = UInt8(v)
                }
            }
        }
        var img = PlanarImage(width: width, height: height)
        let n = width * height
        for i in 0..<n {
            for c in 0..<3 { img.pixels[c * n + i] = Float(rgb[3 * i + c]) / 255 }
        }
        return (img, rgb)
    }

    /// libpng's pixels of a PNG, as packed 8-bit RGB (nil, with the failure recorded, if it refuses it).
    private func libpngPixels(_ png: [UInt8], _ what: String) -> [UInt8]? {
        var img = sc_image()
        var err = [CChar](repeating: 0, count: 256)
        let status = png.withUnsafeBufferPointer { sc_png_decode_libpng($0.baseAddress, $0.count, 1 << 32, &img, &err, err.count) }
        defer { sc_free(img.pixels) }
        guard status == SC_OK, img.info.bit_depth == 8, let pixels = img.pixels else {
            XCTFail("libpng refuses \(what): \(String(cString: err))")
            return nil
        }
        return [UInt8](UnsafeBufferPointer(start: pixels.assumingMemoryBound(to: UInt8.self), count: img.size))
    }

    /// Every size, content and band count decodes in libpng to exactly the pixels encoded,
    /// including one-pixel images, one-row images, bands of one row (a row over the smallest band)
    /// and rows longer than a deflate block.
    func testLibpngReadsExactPixelsAtEverySizeAndBandCount() throws {
        var sizes: [(Int, Int)] = []
        for w in [1, 2, 3, 7, 255, 1000] {
            for h in [1, 2, 300] { sizes.append((w, h)) }
        }
        sizes.append((43_700, 3)) // 128 KiB rows: with 3 threads, three bands of one row each
        for (w, h) in sizes {
            for content in Content.allCases {
                let (img, rgb) = image(content, width: w, height: h)
                for threads in [1, 2, 3, 16] {
                    let what = "\(content) \(w)x\(h) on \(threads) threads"
                    let png = try ImageEncoder.png(img, threads: threads)
                    XCTAssertEqual(libpngPixels(png, what), rgb, what)
                    XCTAssertTrue(try ImageDecoder.decode(png) == img, what)
                }
            }
        }
    }

    /// Noise cannot be compressed: the file is the filtered bytes in stored blocks plus a few
    /// bytes per block, never an inflated Huffman coding of them.
    func testNoiseCostsNoMoreThanItsBytes() throws {
        let (w, h) = (1000, 300)
        let (img, _) = image(.noise, width: w, height: h)
        for threads in [1, 2] {
            let png = try ImageEncoder.png(img, threads: threads)
            XCTAssertLessThan(png.count, (3 * w + 1) * h + 500, "\(threads) threads")
        }
    }

    /// A block's code follows its own bytes: the flat half of a half-noise picture costs almost
    /// nothing, while a single code for the whole would spend bits on every flat byte.
    func testFlatHalfOfANoisyPictureCostsAlmostNothing() throws {
        let (w, h) = (1000, 300)
        let (img, _) = image(.halfNoiseHalfFlat, width: w, height: h)
        let png = try ImageEncoder.png(img, threads: 1)
        XCTAssertLessThan(png.count, (3 * w + 1) * h / 2 + 5_000)
    }

    /// One colour everywhere: a single literal and runs, in a code that still has two symbols.
    func testOneColourImagesAreTiny() throws {
        for (w, h) in [(1, 1), (7, 2), (1000, 300)] {
            let (img, rgb) = image(.constant, width: w, height: h)
            let png = try ImageEncoder.png(img, threads: 2)
            XCTAssertEqual(libpngPixels(png, "\(w)x\(h)"), rgb)
            XCTAssertLessThan(png.count, 100 + 3 * w * h / 100, "\(w)x\(h)")
        }
    }
}
