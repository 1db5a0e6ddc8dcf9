import XCTest
@testable import ImageCodecs

/// `decode(_:fittingTo:)`: a JPEG far larger than needed is decoded at a reduced IDCT scale, then
/// resized, and gives the size and (nearly) the pixels of a full decode resized.
final class ScaledDecodeTests: XCTestCase {
    /// A smooth photo-like JPEG (gradients and soft shapes: what a camera gives at this scale).
    private func photo(width: Int, height: Int) throws -> [UInt8] {
        var img = PlanarImage(width: width, height: height)
        let n = width * height
        img.pixels.withUnsafeMutableBufferPointer { p in
            for y in 0..<height {
                for x in 0..<width {
                    let u = Float(x) / Float(width), v = Float(y) / Float(height)
                    let ring = 0.5 + 0.4 * sinf(12 * ((u - 0.4) * (u - 0.4) + (v - 0.6) * (v - 0.6)).squareRoot())
                    p[y * width + x] = u
                    p[n + y * width + x] = ring
                    p[2 * n + y * width + x] = 0.3 + 0.5 * v * (1 - u)
                }
            }
        }
        return try ImageEncoder.jpeg(img, quality: 95)
    }

    /// Mean and largest absolute difference, in 8-bit levels.
    private func difference(_ a: PlanarImage, _ b: PlanarImage) -> (mean: Float, max: Float) {
        let d = zip(a.pixels, b.pixels).map { abs($0 - $1) * 255 }
        return (d.reduce(0, +) / Float(d.count), d.max() ?? 0)
    }

    func testALargeJPEGComesOutAtTheFittedSizeAndCloseToAFullDecode() throws {
        for (w, h, side) in [(2000, 1500, 512), (2001, 1333, 500), (1024, 1024, 512), (900, 1700, 200)] {
            let jpeg = try photo(width: w, height: h)
            let fast = try ImageDecoder.decode(jpeg, fittingTo: side)
            let full = try ImageDecoder.decode(jpeg).resized(toFit: side)
            XCTAssertEqual([fast.width, fast.height], [full.width, full.height], "\(w)x\(h) to \(side)")
            let d = difference(fast, full)
            XCTAssertLessThan(d.mean, 1.0, "\(w)x\(h) to \(side): mean difference \(d.mean) levels")
            XCTAssertLessThan(d.max, 16, "\(w)x\(h) to \(side): largest difference \(d.max) levels")
        }
    }

    func testTheScaleIsTheSmallestThatStillCoversTheTarget() throws {
        let jpeg = try photo(width: 2000, height: 1500)
        func decoded(atLeast w: Int, _ h: Int) throws -> [Int] {
            let img = try ImageDecoder.decode(jpeg, format: .jpeg, maxPixels: ImageDecoder.defaultMaxPixels, atLeast: (w, h))
            return [img.width, img.height]
        }
        XCTAssertEqual(try decoded(atLeast: 250, 188), [250, 188])    // 1/8
        XCTAssertEqual(try decoded(atLeast: 251, 188), [500, 375])    // 1/4
        XCTAssertEqual(try decoded(atLeast: 512, 384), [1000, 750])   // 1/2
        XCTAssertEqual(try decoded(atLeast: 1001, 10), [2000, 1500])  // full size
    }

    /// Less than twice the fitted size (no reduced scale covers it), or a PNG: exactly the full
    /// decode, resized.
    func testSmallerJPEGsAndPNGsDecodeAsBefore() throws {
        let quad = try fixture("quad_baseline.jpg") // 64x48
        XCTAssertTrue(try ImageDecoder.decode(quad, fittingTo: 512) == ImageDecoder.decode(quad))
        XCTAssertTrue(try ImageDecoder.decode(quad, fittingTo: 40) == ImageDecoder.decode(quad).resized(toFit: 40))
        let png = try ImageEncoder.png(PNGEncoderTests.texture(width: 300, height: 200, seed: 1))
        XCTAssertTrue(try ImageDecoder.decode(png, fittingTo: 100) == ImageDecoder.decode(png).resized(toFit: 100))
    }

    /// An 8-bit image that shrinks is resized straight from its decoded bytes: the same values,
    /// bit for bit, as the full decode resized, whatever the sizes and filter.
    func testAShrinkingEightBitDecodeIsExactlyTheFullDecodeResized() throws {
        for (w, h, side) in [(1024, 1024, 512), (257, 999, 300), (999, 257, 300), (300, 200, 299), (640, 480, 7),
                             (1000, 3, 500), (1001, 1, 500), (37, 1000, 64), (74, 50, 37)] {
            let png = try ImageEncoder.png(PNGEncoderTests.texture(width: w, height: h, seed: UInt64(w * h)))
            let full = try ImageDecoder.decode(png)
            for filter in [ResizeFilter.bicubic, .area] {
                let fitted = try ImageDecoder.decode(png, fittingTo: side, filter: filter)
                let expected = full.resized(toFit: side, filter: filter)
                XCTAssertEqual([fitted.width, fitted.height], [expected.width, expected.height], "\(w)x\(h) to \(side)")
                XCTAssertTrue(fitted.pixels.map(\.bitPattern) == expected.pixels.map(\.bitPattern),
                              "\(w)x\(h) to \(side), \(filter): values differ from the full decode resized")
            }
        }
        // A JPEG decoded at a quarter scale (501x334) and then resized the same way.
        let jpeg = try photo(width: 2001, height: 1333)
        let quarter = try ImageDecoder.decode(jpeg, format: .jpeg, maxPixels: ImageDecoder.defaultMaxPixels, atLeast: (500, 333))
        XCTAssertEqual([quarter.width, quarter.height], [501, 334])
        XCTAssertTrue(try ImageDecoder.decode(jpeg, fittingTo: 500).pixels.map(\.bitPattern)
                      == quarter.resized(width: 500, height: 333).pixels.map(\.bitPattern))
        // 16-bit samples take the float planes first and give the same as before.
        let deep = try fixture("rgb16.png")
        XCTAssertTrue(try ImageDecoder.decode(deep, fittingTo: 5) == ImageDecoder.decode(deep).resized(toFit: 5))
    }

    func testTheEXIFOrientationIsAppliedBeforeFitting() throws {
        // A rotate-90 EXIF segment put in front of a 1600x1000 JPEG: displayed 1000x1600.
        let plain = try photo(width: 1600, height: 1000)
        let exif: [UInt8] = Array("Exif".utf8) + [0, 0] + Array("MM".utf8) + [0, 42, 0, 0, 0, 8,
                                                                               0, 1, 0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 6, 0, 0, 0, 0, 0, 0]
        let app1: [UInt8] = [0xFF, 0xE1, UInt8((exif.count + 2) >> 8), UInt8((exif.count + 2) & 0xFF)] + exif
        let rotated = Array(plain.prefix(2)) + app1 + Array(plain.dropFirst(2))
        XCTAssertEqual(try ImageDecoder.probe(rotated), ImageInfo(format: .jpeg, width: 1000, height: 1600))
        let fast = try ImageDecoder.decode(rotated, fittingTo: 400)
        let full = try ImageDecoder.decode(rotated).resized(toFit: 400)
        XCTAssertEqual([fast.width, fast.height], [250, 400])
        XCTAssertLessThan(difference(fast, full).mean, 1.0)
    }

    func testTheHeaderSizeIsWhatThePixelLimitChecks() throws {
        let jpeg = try photo(width: 2000, height: 1500)
        XCTAssertThrowsError(try ImageDecoder.decode(jpeg, maxPixels: 2_000_000, fittingTo: 256)) { error in
            XCTAssertEqual(error as? ImageCodecError, .tooLarge(width: 2000, height: 1500, limit: 2_000_000))
        }
    }

    /// 4K photos still decode whole, and straight to a small size.
    func testA4KJPEGDecodesWholeAndFitted() throws {
        let jpeg = try photo(width: 3840, height: 2160)
        let full = try ImageDecoder.decode(jpeg)
        XCTAssertEqual([full.width, full.height], [3840, 2160])
        let p = full.pixel(x: 1920, y: 1080)
        XCTAssertEqual(p.r, 0.5, accuracy: 0.03)
        let small = try ImageDecoder.decode(jpeg, fittingTo: 512)
        XCTAssertEqual([small.width, small.height], [512, 288])
    }
}
