import TestSupport
import XCTest
@testable import ImageCodecs

/// Bad input must throw an ImageCodecError (which the service maps to 413/415/422):
/// never crash, hang, or return a partial image.
final class CorruptInputTests: XCTestCase {
    func testTruncatedPNGsThrowCorruptAtEveryOffset() throws {
        for name in ["quad.png", "interlaced.png", "rgb16.png", "palette_trns.png"] {
            let bytes = try fixture(name)
            for n in 1..<bytes.count {
                guard let e = codecError(try ImageDecoder.decode(Array(bytes.prefix(n))), "\(name) cut at \(n)") else { continue }
                XCTAssert(e.isCorrupt, "\(name) cut at \(n): \(e)")
            }
        }
    }

    func testTruncatedJPEGsThrowCorruptAtEveryOffset() throws {
        for name in ["quad_baseline.jpg", "quad_progressive.jpg", "orient6.jpg", "grey.jpg"] {
            let bytes = try fixture(name)
            for n in 1..<bytes.count {
                guard let e = codecError(try ImageDecoder.decode(Array(bytes.prefix(n))), "\(name) cut at \(n)") else { continue }
                XCTAssert(e.isCorrupt, "\(name) cut at \(n): \(e)")
            }
        }
    }

    func testProbeOfATruncatedHeaderThrowsCorrupt() throws {
        let png = try fixture("quad.png"), jpeg = try fixture("quad_baseline.jpg")
        for n in [1, 5, 8, 12, 20, 30] {
            XCTAssert(codecError(try ImageDecoder.probe(Array(png.prefix(n))))?.isCorrupt == true, "png \(n)")
        }
        for n in [1, 2, 3, 10, 100, 300] {
            XCTAssert(codecError(try ImageDecoder.probe(Array(jpeg.prefix(n))))?.isCorrupt == true, "jpeg \(n)")
        }
    }

    func testRandomBytesAfterAValidSignature() {
        var rng = SeededRandom(seed: 42)
        for i in 0..<300 {
            let tail = (0..<Int.random(in: 0...600, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            // PNG: the first chunk must be an IHDR with a valid CRC, so this is always corrupt.
            let e = codecError(try ImageDecoder.decode(PNGBytes.signature + tail), "png #\(i)")
            XCTAssert(e?.isCorrupt == true, "png #\(i): \(String(describing: e))")
            // JPEG: random markers may also name an unsupported variant (e.g. SOF3); any codec error is fine.
            codecError(try ImageDecoder.decode([0xFF, 0xD8, 0xFF] + tail), "jpeg #\(i)")
        }
    }

    func testEveryBitFlipInAPNGIsDetected() throws {
        // quad.png has only critical chunks (IHDR, IDAT, IEND), all CRC-protected.
        let bytes = try fixture("quad.png")
        for i in 0..<bytes.count {
            for bit in [0, 3, 7] {
                var b = bytes
                b[i] ^= UInt8(1 << bit)
                guard let e = codecError(try ImageDecoder.decode(b), "flip byte \(i) bit \(bit)") else { continue }
                if i >= 8 { XCTAssert(e.isCorrupt, "flip byte \(i) bit \(bit): \(e)") }
            }
        }
    }

    func testBitFlipsInJPEGsNeverCrash() throws {
        // JPEG has no checksums: a flipped bit may still decode (to a different picture).
        // What matters is a codec error or a well-formed image, never a crash or a hang.
        for name in ["quad_baseline.jpg", "quad_progressive.jpg", "orient8.jpg"] {
            let bytes = try fixture(name)
            var thrown = 0
            for i in 2..<bytes.count {
                var b = bytes
                b[i] ^= UInt8(1 << (i % 8))
                do {
                    let img = try ImageDecoder.decode(b)
                    XCTAssertEqual(img.pixels.count, 3 * img.width * img.height)
                    XCTAssert(img.pixels.allSatisfy { $0 >= 0 && $0 <= 1 }, "\(name) flip \(i)")
                } catch is ImageCodecError {
                    thrown += 1
                } catch {
                    XCTFail("\(name) flip \(i): unexpected error \(error)")
                }
            }
            XCTAssertGreaterThan(thrown, 0, name)
        }
    }

    func testNonImagesAreUnsupportedFormat() {
        let cases: [(String, [UInt8], String?)] = [
            ("GIF", Array("GIF89a".utf8) + [1, 0, 1, 0, 0x80, 0, 0], "GIF"),
            ("WebP", Array("RIFF".utf8) + [0x24, 0, 0, 0] + Array("WEBPVP8 ".utf8), "WebP"),
            ("BMP", Array("BM".utf8) + [UInt8](repeating: 0, count: 60), "BMP"),
            ("TIFF", [0x49, 0x49, 0x2A, 0x00, 8, 0, 0, 0], "TIFF"),
            ("text", Array("hello, this is not an image\n".utf8), nil),
            ("html", Array("<!doctype html><html></html>".utf8), nil),
            ("empty", [], nil),
            ("one zero byte", [0], nil),
            ("JPEG SOI without a marker", [0xFF, 0xD8, 0x00, 0x00], nil),
        ]
        for (label, bytes, mention) in cases {
            for op in ["decode", "probe"] {
                let e = op == "decode" ? codecError(try ImageDecoder.decode(bytes), label) : codecError(try ImageDecoder.probe(bytes), label)
                guard case .unsupportedFormat(let why)? = e else {
                    XCTFail("\(label) \(op): expected unsupportedFormat, got \(String(describing: e))")
                    continue
                }
                if let mention { XCTAssert(why.contains(mention), "\(label): \(why)") }
            }
        }
    }

    func testHugePNGHeaderIsTooLargeBeforeDecoding() throws {
        let bytes = PNGBytes.claiming(width: 100_000, height: 100_000)
        XCTAssertEqual(try ImageDecoder.probe(bytes), ImageInfo(format: .png, width: 100_000, height: 100_000))
        // Refused from the header, without allocating 30 GB: only the header check answers tooLarge
        // (its IDAT is empty, so a decode that had started would fail as corrupt instead).
        XCTAssertEqual(codecError(try ImageDecoder.decode(bytes)), .tooLarge(width: 100_000, height: 100_000, limit: 40_000_000))
        // Over libpng's own default limit of 1,000,000 a side: still reported as too large, not corrupt.
        let wide = PNGBytes.claiming(width: 2_000_000, height: 100)
        XCTAssertEqual(codecError(try ImageDecoder.decode(wide)), .tooLarge(width: 2_000_000, height: 100, limit: 40_000_000))
    }

    func testHugeJPEGHeaderIsTooLargeBeforeDecoding() throws {
        let jpeg = try fixture("quad_baseline.jpg")
        let big = try XCTUnwrap(JPEGBytes.withSOFSize(jpeg, width: 60_000, height: 60_000))
        XCTAssertEqual(try ImageDecoder.probe(big), ImageInfo(format: .jpeg, width: 60_000, height: 60_000))
        XCTAssertEqual(codecError(try ImageDecoder.decode(big)), .tooLarge(width: 60_000, height: 60_000, limit: 40_000_000))
        // Beyond libjpeg's 65500-pixel maximum: reported as too large too.
        let huge = try XCTUnwrap(JPEGBytes.withSOFSize(jpeg, width: 65_535, height: 65_535))
        XCTAssertEqual(codecError(try ImageDecoder.decode(huge)), .tooLarge(width: 65_535, height: 65_535, limit: 40_000_000))
    }

    func testMaxPixelsIsInclusiveAndUsesTheDisplaySize() throws {
        let png = try fixture("quad.png")
        XCTAssertNoThrow(try ImageDecoder.decode(png, maxPixels: 64 * 48))
        XCTAssertEqual(codecError(try ImageDecoder.decode(png, maxPixels: 64 * 48 - 1)),
                       .tooLarge(width: 64, height: 48, limit: 64 * 48 - 1))
        // An EXIF-rotated JPEG reports its upright size.
        let rotated = JPEGBytes.withExifOrientation(try fixture("quad_baseline.jpg"), 6, bigEndian: true)
        XCTAssertEqual(codecError(try ImageDecoder.decode(rotated, maxPixels: 100)), .tooLarge(width: 48, height: 64, limit: 100))
    }

    func testErrorsDescribeThemselves() {
        XCTAssertEqual(ImageCodecError.tooLarge(width: 10, height: 20, limit: 100).description,
                       "image too large: 10x20 is 200 pixels, the limit is 100")
        let e = codecError(try ImageDecoder.decode(PNGBytes.signature + [0, 0, 0, 13]))
        XCTAssert(e?.description.hasPrefix("corrupt image: invalid PNG") == true, String(describing: e))
    }
}
