import XCTest
@testable import ImageCodecs

/// The PNG writer: Paeth rows deflated in bands on several threads, joined into one zlib stream.
final class PNGEncoderTests: XCTestCase {
    /// A photo-like image: smooth gradients, a hard edge and noise, every value an exact 8-bit level.
    static func texture(width: Int, height: Int, seed: UInt64) -> PlanarImage {
        var state = seed
        var img = PlanarImage(width: width, height: height)
        let n = width * height
        img.pixels.withUnsafeMutableBufferPointer { p in
            for y in 0..<height {
                for x in 0..<width {
                    state = state &* 6364136223846793005 &+ 1442695040888963407
                    let noise = Int(state >> 59)   // 0...31
                    for c in 0..<3 {
                        let base = (x * (c + 1) * 255 / max(width, 1) + y * 255 / max(height, 1)) / 2
                        let edge = x > width / 3 && y < height / 2 ? 90 : 0
                        p[c * n + y * width + x] = Float((base + edge + noise * (c + 1)) % 256) / 255
                    }
                }
            }
        }
        return img
    }

    /// The chunk types of a PNG in order (length-prefixed chunks after the signature).
    private func chunkTypes(_ png: [UInt8]) -> [String] {
        var types: [String] = []
        var i = 8
        while i + 8 <= png.count {
            let length = png[i..<(i + 4)].reduce(0) { $0 << 8 | Int($1) }
            types.append(String(decoding: png[(i + 4)..<(i + 8)], as: UTF8.self))
            i += 12 + length
        }
        return types
    }

    /// The vectorised conversion to bytes gives exactly `quantize` of every value, including the
    /// halves between levels, out-of-range values, infinities and NaN, in every lane.
    func testInterleavingQuantisesEveryValueLikeQuantize() {
        var values: [Float] = [.nan, -.infinity, .infinity, -0.0, -1, 2, 1, 0, Float(0.5) / 255, (Float(0.5) / 255).nextDown]
        for k in 0...256 {
            let x = Float(k) / 255
            values += [x, x.nextUp, x.nextDown, (Float(k) + 0.5) / 255, ((Float(k) + 0.5) / 255).nextDown]
        }
        let n = values.count / 3 * 3
        let third = n / 3
        let img = PlanarImage(width: third, height: 1, pixels: Array(values.prefix(n)))
        let bytes = ImageEncoder.interleavedRGB8(img)
        for c in 0..<3 {
            for i in 0..<third {
                XCTAssertEqual(bytes[3 * i + c], ImageEncoder.quantize(img.pixels[c * third + i]), "value \(img.pixels[c * third + i])")
            }
        }
    }

    /// An image large enough to be quantised in bands on several cores gives `quantize` of every
    /// value at its own place, from contiguous planes and from planes with a wider row stride.
    func testBandedInterleavingPutsEveryRowInPlace() {
        let (w, h) = (611, 397)
        for stride in [w, w + 13] {
            var state: UInt64 = UInt64(stride)
            let planes = (0..<(3 * stride * h)).map { _ -> Float in
                state = state &* 6364136223846793005 &+ 1442695040888963407
                return Float(state >> 40) / Float(1 << 24) * 1.2 - 0.1
            }
            let bytes = planes.withUnsafeBufferPointer { p in
                ImageEncoder.interleavedRGB8(PlanarRows(width: w, height: h, rowStride: stride, red: p.baseAddress!,
                                                        green: p.baseAddress! + stride * h, blue: p.baseAddress! + 2 * stride * h))
            }
            XCTAssertEqual(bytes.count, 3 * w * h)
            var mismatches = 0
            for c in 0..<3 {
                for y in 0..<h {
                    for x in 0..<w where bytes[3 * (y * w + x) + c] != ImageEncoder.quantize(planes[(c * h + y) * stride + x]) {
                        mismatches += 1
                    }
                }
            }
            XCTAssertEqual(mismatches, 0, "row stride \(stride)")
        }
    }

    func testEveryThreadCountGivesAnExactRoundTrip() throws {
        for (w, h) in [(700, 500), (513, 1), (1, 700), (300, 2)] {
            let img = Self.texture(width: w, height: h, seed: UInt64(w * h))
            for threads in [1, 2, 3, 8] {
                let png = try ImageEncoder.png(img, threads: threads)
                XCTAssertTrue(try ImageDecoder.decode(png) == img, "\(w)x\(h) on \(threads) threads")
            }
        }
    }

    /// Each band quantises its own rows (and the row above its first one, for the filter): planes
    /// with values between levels, read with a row stride wider than the image as from a tensor,
    /// decode to `quantize` of every value on any number of threads, the same bytes every time.
    func testBandsQuantiseTheirRowsFromStridedPlanes() throws {
        let (w, h, stride) = (301, 257, 320)
        var state: UInt64 = 11
        let planes = (0..<(3 * stride * h)).map { _ -> Float in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Float(state >> 40) / Float(1 << 24) * 1.2 - 0.1 // some below 0 and above 1
        }
        var expected = [Float](repeating: 0, count: 3 * w * h)
        for p in 0..<3 {
            for y in 0..<h {
                for x in 0..<w {
                    expected[(p * h + y) * w + x] = Float(ImageEncoder.quantize(planes[(p * h + y) * stride + x])) / 255
                }
            }
        }
        let pngs = try planes.withUnsafeBufferPointer { buf in
            let base = buf.baseAddress!
            let rows = PlanarRows(width: w, height: h, rowStride: stride, red: base, green: base + stride * h,
                                  blue: base + 2 * stride * h)
            return try [1, 2, 3, 8].map { try ImageEncoder.png(rows, threads: $0) }
        }
        for (png, threads) in zip(pngs, [1, 2, 3, 8]) {
            XCTAssertTrue(try ImageDecoder.decode(png) == PlanarImage(width: w, height: h, pixels: expected), "\(threads) threads")
        }
        XCTAssertEqual(chunkTypes(pngs[0]), ["IHDR", "IDAT", "IEND"])
        XCTAssertEqual(chunkTypes(pngs[1]).filter { $0 == "IDAT" }.count, 2)
    }

    func testBandsAreIDATChunksOfOneStandardPNG() throws {
        let img = Self.texture(width: 700, height: 500, seed: 7)
        let one = try ImageEncoder.png(img, threads: 1)
        let two = try ImageEncoder.png(img, threads: 2)
        XCTAssertEqual(chunkTypes(one), ["IHDR", "IDAT", "IEND"])
        XCTAssertEqual(chunkTypes(two), ["IHDR", "IDAT", "IDAT", "IEND"])
        // Two bands cost only a flush marker and the first rows' runs: nearly the same size.
        XCTAssertLessThan(abs(two.count - one.count), one.count / 100)
    }

    func testFlatAreasCompressToRuns() throws {
        let flat = PlanarImage(width: 1024, height: 1024, fill: (0.2, 0.5, 0.9))
        let png = try ImageEncoder.png(flat)
        XCTAssertLessThan(png.count, 20_000, "3 MB of one colour")
        let levels = flat.pixels.map { Float(ImageEncoder.quantize($0)) / 255 }
        XCTAssertTrue(try ImageDecoder.decode(png) == PlanarImage(width: 1024, height: 1024, pixels: levels))
    }

    /// 4K in and out: more rows than a thread's band, decoded back exactly.
    func testA4KImageRoundTrips() throws {
        let img = Self.texture(width: 3840, height: 2160, seed: 4)
        let png = try ImageEncoder.png(img, threads: 3)
        XCTAssertEqual(chunkTypes(png).filter { $0 == "IDAT" }.count, 3)
        XCTAssertTrue(try ImageDecoder.decode(png) == img)
    }
}
