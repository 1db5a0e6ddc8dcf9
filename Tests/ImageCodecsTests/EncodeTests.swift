import TestSupport
import XCTest
@testable import ImageCodecs

final class QuantizeTests: XCTestCase {
    func testEveryLevelMapsToItself() {
        for k in 0...255 {
            XCTAssertEqual(ImageEncoder.quantize(Float(k) / 255), UInt8(k), "k = \(k)")
        }
    }

    func testRoundsToNearestLevel() {
        for k in 0..<255 {
            XCTAssertEqual(ImageEncoder.quantize((Float(k) + 0.49) / 255), UInt8(k), "k = \(k) + 0.49")
            XCTAssertEqual(ImageEncoder.quantize((Float(k) + 0.51) / 255), UInt8(k + 1), "k = \(k) + 0.51")
        }
    }

    func testExactHalvesRoundUpNotToEven() {
        // floor(x*255 + 0.5): exactly half-way rounds up, for even and odd k alike.
        XCTAssertEqual(ImageEncoder.quantize(0.5), 128) // 127.5 -> 128
        var checked = 0
        for k in 0..<255 {
            let x = (Float(k) + 0.5) / 255
            guard x * 255 == Float(k) + 0.5 else { continue } // only where x*255 is exactly k + 0.5 in Float
            XCTAssertEqual(ImageEncoder.quantize(x), UInt8(k + 1), "k = \(k)")
            checked += 1
        }
        XCTAssertGreaterThan(checked, 50)
        // The smallest half: 0.5/255 goes to 1 whenever x*255 is at least 0.5.
        let h = Float(0.5) / 255
        XCTAssertEqual(ImageEncoder.quantize(h), h * 255 >= 0.5 ? 1 : 0)
        XCTAssertEqual(ImageEncoder.quantize(h.nextDown.nextDown), 0)
    }

    func testClampsOutOfRangeAndNaN() {
        XCTAssertEqual(ImageEncoder.quantize(0), 0)
        XCTAssertEqual(ImageEncoder.quantize(-0.0), 0)
        XCTAssertEqual(ImageEncoder.quantize(1), 255)
        XCTAssertEqual(ImageEncoder.quantize(-0.3), 0)
        XCTAssertEqual(ImageEncoder.quantize(-1e30), 0)
        XCTAssertEqual(ImageEncoder.quantize(1.0001), 255)
        XCTAssertEqual(ImageEncoder.quantize(7), 255)
        XCTAssertEqual(ImageEncoder.quantize(.infinity), 255)
        XCTAssertEqual(ImageEncoder.quantize(-.infinity), 0)
        XCTAssertEqual(ImageEncoder.quantize(.nan), 0)
        XCTAssertEqual(ImageEncoder.quantize(.signalingNaN), 0)
        XCTAssertEqual(ImageEncoder.quantize(.leastNonzeroMagnitude), 0)
        XCTAssertEqual(ImageEncoder.quantize(1 - .ulpOfOne), 255)
    }
}

final class EncodeTests: XCTestCase {
    /// An image whose every value is an exact 8-bit level.
    private func randomLevels(width: Int, height: Int, seed: UInt64) -> PlanarImage {
        var rng = SeededRandom(seed: seed)
        let px = (0..<(3 * width * height)).map { _ in Float(UInt8.random(in: 0...255, using: &rng)) / 255 }
        return PlanarImage(width: width, height: height, pixels: px)
    }

    func testPNGRoundTripIsExactFor8BitValues() throws {
        for (w, h, seed) in [(37, 23, 1), (1, 1, 2), (256, 3, 3), (5, 200, 4)] as [(Int, Int, UInt64)] {
            let img = randomLevels(width: w, height: h, seed: seed)
            let png = try ImageEncoder.png(img)
            XCTAssertEqual(Array(png.prefix(8)), PNGBytes.signature)
            XCTAssertEqual(try ImageDecoder.probe(png), ImageInfo(format: .png, width: w, height: h))
            XCTAssertEqual(try ImageDecoder.decode(png), img, "\(w)x\(h)")
        }
    }

    func testPNGOutputUsesQuantize() throws {
        let values: [Float] = [-0.5, .nan, 0.2, 1.7, 0.5, 0.5 / 255 + 1e-4]
        let img = PlanarImage(width: 2, height: 1, pixels: values)
        let back = try ImageDecoder.decode(ImageEncoder.png(img))
        XCTAssertEqual(back.pixels, values.map { Float(ImageEncoder.quantize($0)) / 255 })
        XCTAssertEqual(back.pixels.map { Int(($0 * 255).rounded()) }, [0, 0, 51, 255, 128, 1])
    }

    func testJPEGRoundTripIsClose() throws {
        let img = Quad.image()
        let jpeg = try ImageEncoder.jpeg(img)
        XCTAssertEqual(Array(jpeg.prefix(3)), [0xFF, 0xD8, 0xFF])
        XCTAssertEqual(Array(jpeg.suffix(2)), [0xFF, 0xD9])
        let back = try ImageDecoder.decode(jpeg)
        XCTAssertEqual([back.width, back.height], [64, 48])
        for s in Quad.samples { assertLevels(back, s.x, s.y, s.rgb, tolerance: 3) }
    }

    func testJPEGQualityTradesSizeForFidelity() throws {
        let img = randomLevels(width: 64, height: 64, seed: 9)
        let low = try ImageEncoder.jpeg(img, quality: 20)
        let high = try ImageEncoder.jpeg(img, quality: 98)
        XCTAssertLessThan(low.count, high.count)
        func error(_ bytes: [UInt8]) throws -> Float {
            let d = try ImageDecoder.decode(bytes)
            return zip(d.pixels, img.pixels).map { abs($0 - $1) }.reduce(0, +) / Float(img.pixels.count)
        }
        XCTAssertLessThan(try error(high), try error(low))
        // Out-of-range qualities are clamped, not rejected.
        XCTAssertNoThrow(try ImageEncoder.jpeg(img, quality: 0))
        XCTAssertNoThrow(try ImageEncoder.jpeg(img, quality: 1000))
    }

    func testEncodeDispatchesOnFormat() throws {
        let img = Quad.image()
        XCTAssertEqual(ImageDecoder.format(of: try ImageEncoder.encode(img, as: .png)), .png)
        XCTAssertEqual(ImageDecoder.format(of: try ImageEncoder.encode(img, as: .jpeg)), .jpeg)
        XCTAssertEqual(try ImageEncoder.encode(img, as: .png), try ImageEncoder.png(img))
    }

    func testEncodedPNGMatchesAFixtureDecodedElsewhere() throws {
        // quad.png was written by the Python generator; ours must decode to the same pixels.
        XCTAssertEqual(try ImageDecoder.decode(ImageEncoder.png(Quad.image())), try ImageDecoder.decode(fixture("quad.png")))
    }
}
