import Foundation
import XCTest
@testable import ImageCodecs

/// Decoding the committed fixtures; pixel formulas are those of make_fixtures.py.
final class PNGDecodeTests: XCTestCase {
    func testGrey8IsThreeEqualChannelsOfVOver255() throws {
        let img = try ImageDecoder.decode(fixture("grey8.png"))
        XCTAssertEqual(img.width, 32)
        XCTAssertEqual(img.height, 16)
        XCTAssertEqual(img.pixels.count, 3 * 32 * 16)
        for y in 0..<16 {
            for x in 0..<32 {
                let v = Float((x * 8 + y * 3) % 256) / 255
                assertExact(img, x, y, v, v, v)
            }
        }
    }

    func testGreyBelow8BitsIsExpandedToFullRange() throws {
        let g4 = try ImageDecoder.decode(fixture("grey4.png"))
        XCTAssertEqual([g4.width, g4.height], [16, 8])
        for y in 0..<8 {
            for x in 0..<16 {
                let v = Float(((x + y) % 16) * 17) / 255
                assertExact(g4, x, y, v, v, v)
            }
        }
        let g1 = try ImageDecoder.decode(fixture("grey1.png"))
        XCTAssertEqual([g1.width, g1.height], [9, 3]) // width not a multiple of 8: padding bits ignored
        for y in 0..<3 {
            for x in 0..<9 {
                let v: Float = (x + y) % 2 == 1 ? 1 : 0
                assertExact(g1, x, y, v, v, v)
            }
        }
    }

    func testGrey16IsVOver65535() throws {
        let img = try ImageDecoder.decode(fixture("grey16.png"))
        XCTAssertEqual([img.width, img.height], [8, 4])
        for y in 0..<4 {
            for x in 0..<8 {
                let v = Float(x * 8191 + y * 17) / 65535
                assertExact(img, x, y, v, v, v)
            }
        }
        // 16-bit precision is kept, not truncated to 8 bits: (1,0) is 8191/65535, between 8-bit levels.
        XCTAssertNotEqual(img.pixel(x: 1, y: 0).r * 255, (img.pixel(x: 1, y: 0).r * 255).rounded())
    }

    func testGreyAlphaDropsAlphaWithoutCompositing() throws {
        let img = try ImageDecoder.decode(fixture("grey_alpha.png"))
        XCTAssertEqual([img.width, img.height], [16, 8])
        for y in 0..<8 {
            for x in 0..<16 {
                let v = Float((x * 16 + y) % 256) / 255
                assertExact(img, x, y, v, v, v) // (0,0) has alpha 0 and is still its grey value
            }
        }
    }

    func testGreyWithTRNSKeepsTheTransparentValue() throws {
        let img = try ImageDecoder.decode(fixture("grey_trns.png"))
        for y in 0..<10 {
            for x in 0..<10 {
                let v = Float((x + y) % 3 == 0 ? 100 : x * 20 + y) / 255
                assertExact(img, x, y, v, v, v)
            }
        }
    }

    func testPaletteWithTRNSIsExpandedToOpaqueRGB() throws {
        let palette: [[Float]] = [[255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 20, 30]].map { $0.map { $0 / 255 } }
        let img = try ImageDecoder.decode(fixture("palette_trns.png"))
        XCTAssertEqual([img.width, img.height], [8, 8])
        for y in 0..<8 {
            for x in 0..<8 {
                let c = palette[(x + y) % 4]
                assertExact(img, x, y, c[0], c[1], c[2]) // entry 0 is fully transparent, entry 1 half
            }
        }
        let p2 = try ImageDecoder.decode(fixture("palette2.png")) // 2-bit palette indices
        XCTAssertEqual([p2.width, p2.height], [7, 5])
        for y in 0..<5 {
            for x in 0..<7 {
                let c = palette[(x * y) % 4]
                assertExact(p2, x, y, c[0], c[1], c[2])
            }
        }
    }

    func testRGB16KeepsFullPrecisionInHostByteOrder() throws {
        let img = try ImageDecoder.decode(fixture("rgb16.png"))
        XCTAssertEqual([img.width, img.height], [8, 6])
        for y in 0..<6 {
            for x in 0..<8 {
                assertExact(img, x, y, Float(x * 8000 + y) / 65535, Float(65535 - x * 5000) / 65535,
                            Float(y * 10000 + 0x0102) / 65535)
            }
        }
    }

    func testRGBAIgnoresAlpha() throws {
        let img = try ImageDecoder.decode(fixture("rgba.png"))
        XCTAssertEqual([img.width, img.height], [12, 10])
        for y in 0..<10 {
            for x in 0..<12 {
                assertExact(img, x, y, Float(x * 20) / 255, Float(y * 25) / 255, Float((x + y) * 5) / 255)
            }
        }
    }

    func testAdam7InterlacedPNGsDecodeEveryPixel() throws {
        let img = try ImageDecoder.decode(fixture("interlaced.png"))
        XCTAssertEqual([img.width, img.height], [13, 11])
        for y in 0..<11 {
            for x in 0..<13 {
                assertExact(img, x, y, Float((x * 19) % 256) / 255, Float((y * 23) % 256) / 255,
                            Float((x * y * 7) % 256) / 255)
            }
        }
        let ga = try ImageDecoder.decode(fixture("interlaced_ga16.png")) // interlaced + grey + alpha + 16-bit
        XCTAssertEqual([ga.width, ga.height], [10, 9])
        for y in 0..<9 {
            for x in 0..<10 {
                let v = Float(x * 6000 + y * 300) / 65535
                assertExact(ga, x, y, v, v, v)
            }
        }
    }

    func testQuadrantPNGIsExact() throws {
        let img = try ImageDecoder.decode(fixture("quad.png"))
        XCTAssertEqual(img, Quad.image())
    }

    func testDecodeContentsOfPath() throws {
        let url = try fixtureURL("quad.png")
        XCTAssertEqual(try ImageDecoder.decode(contentsOf: url.path), Quad.image())
        // A missing file is a file-system error, not a codec error.
        XCTAssertThrowsError(try ImageDecoder.decode(contentsOf: "/nonexistent/stylist/no.png")) { error in
            XCTAssertFalse(error is ImageCodecError, "\(error)")
        }
    }

    func testProbeReadsTheHeaderOnly() throws {
        XCTAssertEqual(try ImageDecoder.probe(fixture("quad.png")), ImageInfo(format: .png, width: 64, height: 48))
        XCTAssertEqual(try ImageDecoder.probe(fixture("rgb16.png")), ImageInfo(format: .png, width: 8, height: 6))
        // The header alone is enough: cut the PNG right after IHDR + the first IDAT's chunk header.
        let png = try fixture("quad.png")
        XCTAssertEqual(try ImageDecoder.probe(Array(png.prefix(8 + 25 + 8))).width, 64)
    }

    func testFormatSniffingAndMimeTypes() throws {
        XCTAssertEqual(ImageDecoder.format(of: try fixture("quad.png")), .png)
        XCTAssertEqual(ImageDecoder.format(of: try fixture("orient6.jpg")), .jpeg)
        XCTAssertNil(ImageDecoder.format(of: Array("GIF89a".utf8)))
        XCTAssertEqual(ImageFormat.png.mimeType, "image/png")
        XCTAssertEqual(ImageFormat.jpeg.mimeType, "image/jpeg")
        XCTAssertEqual(ImageFormat(rawValue: "jpeg"), .jpeg)
    }
}

final class JPEGDecodeTests: XCTestCase {
    func testBaselineAndProgressiveJPEG() throws {
        for name in ["quad_baseline.jpg", "quad_progressive.jpg"] {
            let img = try ImageDecoder.decode(fixture(name))
            XCTAssertEqual([img.width, img.height], [64, 48], name)
            for s in Quad.samples { assertLevels(img, s.x, s.y, s.rgb, tolerance: 4, name) }
            XCTAssert(img.pixels.allSatisfy { $0 >= 0 && $0 <= 1 }, name)
        }
    }

    func testGreyscaleJPEGGivesEqualChannels() throws {
        let img = try ImageDecoder.decode(fixture("grey.jpg"))
        XCTAssertEqual([img.width, img.height], [50, 38]) // partial MCUs on both axes
        let n = img.planeSize
        for i in 0..<n {
            XCTAssertEqual(img.pixels[i], img.pixels[n + i])
            XCTAssertEqual(img.pixels[i], img.pixels[2 * n + i])
        }
        for (x, y, v) in [(5, 5, 30), (45, 5, 90), (5, 30, 160), (45, 30, 230)] {
            assertLevels(img, x, y, [v, v, v], tolerance: 3)
        }
    }

    func testAdobeCMYKJPEGIsConvertedToRGB() throws {
        let img = try ImageDecoder.decode(fixture("cmyk.jpg"))
        XCTAssertEqual([img.width, img.height], [64, 48])
        for s in Quad.samples { assertLevels(img, s.x, s.y, s.rgb, tolerance: 6) }
    }

    /// orientN.jpg stores the pattern transformed so that applying EXIF orientation N makes it upright.
    func testAllEightExifOrientationsComeOutUpright() throws {
        for k in 1...8 {
            let bytes = try fixture("orient\(k).jpg")
            let info = try ImageDecoder.probe(bytes)
            XCTAssertEqual(info, ImageInfo(format: .jpeg, width: 64, height: 48), "orientation \(k)")
            let img = try ImageDecoder.decode(bytes)
            XCTAssertEqual([img.width, img.height], [64, 48], "orientation \(k)")
            for s in Quad.samples { assertLevels(img, s.x, s.y, s.rgb, tolerance: 6, "orientation \(k)") }
            // Corners too (a few pixels in, away from block edges).
            assertLevels(img, 2, 2, Quad.tl, tolerance: 8, "orientation \(k)")
            assertLevels(img, 61, 45, Quad.br, tolerance: 8, "orientation \(k)")
        }
    }

    func testStoredSizeDiffersFromDisplaySizeForRotations() throws {
        // orient6 is stored 48x64 (portrait) and displayed 64x48.
        let bytes = try fixture("orient6.jpg")
        guard let sof = JPEGBytes.withSOFSize(bytes, width: 48, height: 64) else { return XCTFail("no SOF") }
        XCTAssertEqual(sof, bytes, "fixture is stored 48 wide, 64 high")
    }

    func testBigAndLittleEndianExifAreBothRead() throws {
        let upright = try fixture("quad_baseline.jpg")
        for bigEndian in [true, false] {
            // Orientation 6: the stored image is rotated 90° clockwise for display.
            let img = try ImageDecoder.decode(JPEGBytes.withExifOrientation(upright, 6, bigEndian: bigEndian))
            XCTAssertEqual([img.width, img.height], [48, 64], "bigEndian \(bigEndian)")
            // Rotating the upright pattern clockwise puts the bottom-left quadrant at the top-left.
            assertLevels(img, 12, 16, Quad.bl, tolerance: 6)
            assertLevels(img, 36, 16, Quad.tl, tolerance: 6)
            assertLevels(img, 12, 48, Quad.br, tolerance: 6)
            assertLevels(img, 36, 48, Quad.tr, tolerance: 6)
            XCTAssertEqual(try ImageDecoder.probe(JPEGBytes.withExifOrientation(upright, 8, bigEndian: bigEndian)),
                           ImageInfo(format: .jpeg, width: 48, height: 64))
        }
    }

    func testInvalidOrientationValuesAreIgnored() throws {
        let upright = try fixture("quad_baseline.jpg")
        let reference = try ImageDecoder.decode(upright)
        for bad: UInt16 in [0, 9, 0xFFFF] {
            XCTAssertEqual(try ImageDecoder.decode(JPEGBytes.withExifOrientation(upright, bad, bigEndian: true)),
                           reference, "orientation \(bad)")
        }
        // An APP1 segment that ends inside the orientation entry: the entry must not be read
        // past the segment's end (so no rotation); libjpeg skips the leftover bytes.
        var bytes = JPEGBytes.withExifOrientation(upright, 6, bigEndian: false)
        bytes[5] = 20
        XCTAssertEqual(try ImageDecoder.decode(bytes), reference)
    }
}
