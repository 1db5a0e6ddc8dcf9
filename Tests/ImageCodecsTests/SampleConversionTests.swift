import XCTest
@testable import ImageCodecs

/// The vectorised 8-bit row conversion against the scalar definition, v/255 in float.
final class SampleConversionTests: XCTestCase {
    /// Every level in every channel, at every width from 1 to 40 (whole vectors of sixteen pixels
    /// and the tail after them) and at 256: bit for bit v/255, and nothing written past the row.
    func testEveryEightBitLevelBecomesExactlyItsQuotientBy255() {
        for width in Array(1...40) + [256] {
            for offset in 0..<(256 / min(width, 256) + 1) {
                let count = width
                var src = [UInt8](repeating: 0, count: 3 * count)
                for x in 0..<count {
                    let v = (x + offset * width) % 256
                    src[3 * x] = UInt8(v)
                    src[3 * x + 1] = UInt8(255 - v)
                    src[3 * x + 2] = UInt8((v * 7 + 3) % 256)
                }
                let guardValue: Float = -7
                var planes = [Float](repeating: guardValue, count: 3 * (count + 16))
                src.withUnsafeBufferPointer { s in
                    planes.withUnsafeMutableBufferPointer { p in
                        let base = p.baseAddress!
                        ImageDecoder.convertRGB8Row(s.baseAddress!, count: count, red: base, green: base + (count + 16),
                                                    blue: base + 2 * (count + 16))
                    }
                }
                for c in 0..<3 {
                    for x in 0..<count {
                        let expected = Float(src[3 * x + c]) / 255
                        XCTAssertEqual(planes[c * (count + 16) + x].bitPattern, expected.bitPattern,
                                       "width \(width), channel \(c), pixel \(x), level \(src[3 * x + c])")
                    }
                    XCTAssertTrue(planes[(c * (count + 16) + count)..<((c + 1) * (count + 16))].allSatisfy { $0 == guardValue },
                                  "width \(width), channel \(c): written past the row")
                }
            }
        }
    }

    /// A whole image through the fast PNG path: each plane value is the stored byte over 255.
    func testADecodedEightBitPNGHoldsEachByteOver255() throws {
        let (w, h) = (37, 5)
        var rgb = [UInt8](repeating: 0, count: 3 * w * h)
        for i in rgb.indices { rgb[i] = UInt8((i * 101 + 13) % 256) }
        let png = try ImageEncoder.png(PlanarImage(width: w, height: h, pixels: (0..<3).flatMap { c in
            (0..<(w * h)).map { Float(rgb[3 * $0 + c]) / 255 }
        }))
        let img = try ImageDecoder.decode(png)
        for c in 0..<3 {
            for i in 0..<(w * h) {
                XCTAssertEqual(img.pixels[c * w * h + i].bitPattern, (Float(rgb[3 * i + c]) / 255).bitPattern)
            }
        }
    }
}
