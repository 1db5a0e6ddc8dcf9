import Foundation
import XCTest
@testable import ImageCodecs

/// 4K images must decode and resize in well under a second (release builds).
final class PerformanceTests: XCTestCase {
    func test4KDecodeAndResizeAreFast() throws {
        #if DEBUG
        throw XCTSkip("timings are only meaningful in release builds (swift test -c release)")
        #else
        let w = 3840, h = 2160
        var img = PlanarImage(width: w, height: h)
        img.pixels.withUnsafeMutableBufferPointer { p in
            for c in 0..<3 {
                for y in 0..<h {
                    for x in 0..<w {
                        p[c * w * h + y * w + x] = Float((x * (c + 1) + y * 3) % 256) / 255
                    }
                }
            }
        }
        let jpeg = try ImageEncoder.jpeg(img)
        let png = try ImageEncoder.png(img)
        func time(_ label: String, _ body: () throws -> Void) rethrows -> Double {
            let t0 = Date()
            try body()
            let dt = Date().timeIntervalSince(t0)
            print("4K \(label): \(String(format: "%.3f", dt)) s")
            return dt
        }
        var decoded = PlanarImage(width: 0, height: 0)
        XCTAssertLessThan(try time("JPEG decode") { decoded = try ImageDecoder.decode(jpeg) }, 0.5)
        XCTAssertEqual([decoded.width, decoded.height], [w, h])
        XCTAssertLessThan(try time("PNG decode") { decoded = try ImageDecoder.decode(png) }, 0.5)
        XCTAssertEqual(decoded, PlanarImage(width: w, height: h, pixels: img.pixels.map { Float(ImageEncoder.quantize($0)) / 255 }))
        var small = decoded
        XCTAssertLessThan(time("resize to 512 (bicubic)") { small = decoded.resized(toFit: 512) }, 0.5)
        XCTAssertEqual([small.width, small.height], [512, 288])
        XCTAssertLessThan(time("resize to 512 (area)") { small = decoded.resized(toFit: 512, filter: .area) }, 0.5)
        XCTAssertLessThan(time("resize to 1920") { small = decoded.resized(toFit: 1920) }, 0.5)
        XCTAssertLessThan(try time("PNG encode") { _ = try ImageEncoder.png(decoded) }, 1.5)
        XCTAssertLessThan(try time("JPEG encode") { _ = try ImageEncoder.jpeg(decoded) }, 0.5)
        #endif
    }
}
