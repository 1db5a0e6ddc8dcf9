import Foundation
import XCTest
@testable import ImageCodecs

final class ResizeTests: XCTestCase {
    private func image(width: Int, height: Int, _ f: (Int, Int, Int) -> Float) -> PlanarImage {
        var img = PlanarImage(width: width, height: height)
        for c in 0..<3 {
            for y in 0..<height {
                for x in 0..<width { img.pixels[c * width * height + y * width + x] = f(c, x, y) }
            }
        }
        return img
    }

    func testFitKeepsAspectRatioRounded() {
        let cases: [((Int, Int), Int, (Int, Int))] = [
            ((1000, 600), 512, (512, 307)),  // 307.2
            ((600, 1000), 512, (307, 512)),
            ((601, 1000), 512, (308, 512)),  // 307.7
            ((700, 700), 512, (512, 512)),
            ((5000, 3), 512, (512, 1)),      // never 0
            ((3840, 2160), 512, (512, 288)),
        ]
        for ((w, h), side, (ew, eh)) in cases {
            let size = PlanarImage.fittingSize(width: w, height: h, maxSide: side)
            XCTAssertEqual([size.width, size.height], [ew, eh], "\(w)x\(h) -> \(side)")
        }
        let img = PlanarImage(width: 100, height: 60, fill: (0.25, 0.5, 0.75)).resized(toFit: 50)
        XCTAssertEqual([img.width, img.height], [50, 30])
    }

    func testFitOnlyDownsamples() {
        let img = image(width: 40, height: 30) { c, x, y in Float((c * 7 + x * 3 + y) % 11) / 10 }
        XCTAssertEqual(img.resized(toFit: 40), img)
        XCTAssertEqual(img.resized(toFit: 1000), img)
        XCTAssertEqual(img.resized(toFit: 39).width, 39)
    }

    func testCheckerboardAveragesToGrey() {
        // A nearest-neighbour filter would give 0 or 1 here.
        let board = image(width: 64, height: 48) { _, x, y in Float((x + y) % 2) }
        for filter in [ResizeFilter.bicubic, .area] {
            let half = board.resized(width: 32, height: 24, filter: filter)
            XCTAssertEqual([half.width, half.height], [32, 24])
            for y in 0..<24 {
                for x in 0..<32 {
                    let v = half.pixel(x: x, y: y).g
                    let interior = x >= 2 && x < 30 && y >= 2 && y < 22
                    // Away from the borders the result is exactly grey; at the borders the
                    // truncated bicubic kernel leaves a small bias.
                    XCTAssertEqual(v, 0.5, accuracy: interior || filter == .area ? 1e-5 : 0.05, "\(filter) (\(x), \(y))")
                }
            }
        }
        // The same through resized(toFit:), at a non-integer factor.
        let fit = board.resized(toFit: 27)
        XCTAssertEqual([fit.width, fit.height], [27, 20])
        for y in 2..<18 { for x in 2..<25 { XCTAssertEqual(fit.pixel(x: x, y: y).r, 0.5, accuracy: 0.06) } }
    }

    func testConstantImagesStayConstant() {
        let img = PlanarImage(width: 100, height: 77, fill: (0.3, 0.6, 0.9))
        for filter in [ResizeFilter.bicubic, .area] {
            for (w, h) in [(37, 29), (100, 10), (9, 77), (150, 200), (1, 1)] {
                let r = img.resized(width: w, height: h, filter: filter)
                XCTAssertEqual([r.width, r.height], [w, h])
                let n = w * h
                for i in 0..<n {
                    XCTAssertEqual(r.pixels[i], 0.3, accuracy: 1e-5)
                    XCTAssertEqual(r.pixels[n + i], 0.6, accuracy: 1e-5)
                    XCTAssertEqual(r.pixels[2 * n + i], 0.9, accuracy: 1e-5)
                }
            }
        }
    }

    func testLinearRampIsPreservedInTheInterior() {
        // Symmetric, normalised kernels reproduce linear functions exactly (away from borders).
        let img = image(width: 120, height: 90) { c, x, y in (Float(x) + 0.5) / 120 * (c == 0 ? 1 : 0.5) + (Float(y) + 0.5) / 900 }
        for filter in [ResizeFilter.bicubic, .area] {
            let r = img.resized(width: 40, height: 30, filter: filter)
            for y in 3..<27 {
                for x in 3..<37 {
                    let expected = (Float(x) + 0.5) / 40 + (Float(y) + 0.5) / 300
                    XCTAssertEqual(r.pixel(x: x, y: y).r, expected, accuracy: 1e-4, "\(filter) (\(x), \(y))")
                }
            }
        }
    }

    func testQuadrantColoursSurviveDownscaling() {
        let small = Quad.image().resized(toFit: 32)
        XCTAssertEqual([small.width, small.height], [32, 24])
        for s in Quad.samples { assertLevels(small, s.x / 2, s.y / 2, s.rgb, tolerance: 0) }
    }

    func testChannelsStayInTheirPlanes() {
        let img = PlanarImage(width: 50, height: 50, fill: (1, 0, 0))
        let r = img.resized(width: 20, height: 33)
        XCTAssert(r.pixels[0..<(20 * 33)].allSatisfy { abs($0 - 1) < 1e-5 })
        XCTAssert(r.pixels[(20 * 33)...].allSatisfy { abs($0) < 1e-5 })
    }

    func testUpscalingInterpolates() {
        // Catmull-Rom reproduces a linear ramp wherever all four taps are inside the image.
        let ramp = image(width: 8, height: 2) { _, x, _ in Float(x) / 7 }
        let up = ramp.resized(width: 32, height: 5)
        XCTAssertEqual([up.width, up.height], [32, 5])
        for x in 10..<22 {
            let u = (Float(x) + 0.5) / 4 - 0.5 // source coordinate of this output pixel
            XCTAssertEqual(up.pixel(x: x, y: 2).r, u / 7, accuracy: 1e-5, "x = \(x)")
        }
        for x in 1..<32 { XCTAssertGreaterThanOrEqual(up.pixel(x: x, y: 0).r, up.pixel(x: x - 1, y: 0).r - 1e-5) }
        // The area filter interpolates linearly when upscaling (edge pixels are clamped).
        let two = image(width: 2, height: 1) { _, x, _ in Float(x) }
        let linear = two.resized(width: 8, height: 3, filter: .area)
        XCTAssertEqual((0..<8).map { linear.pixel(x: $0, y: 0).r },
                       [0, 0, 0.125, 0.375, 0.625, 0.875, 1, 1].map { Float($0) })
    }

    /// The horizontal pass (halving groups of eight outputs summed tap by tap, eight outputs
    /// reduced together where their windows fit, one at a time elsewhere, as far as the row's
    /// ends) against the kernel's weights summed in double precision. Halvings to odd widths
    /// leave outputs after the last group; bicubic 46 -> 23 has two halving groups, 34 -> 17 one,
    /// 20 -> 10 none.
    func testHorizontalResamplingMatchesTheKernelSummedInDouble() {
        for (w, outW) in [(1000, 500), (1001, 37), (64, 20), (37, 9), (300, 299), (17, 16),
                          (2048, 1024), (1034, 517), (74, 37), (46, 23), (34, 17), (20, 10), (1001, 500)] {
            let img = image(width: w, height: 2) { c, x, y in Float((x * 37 + y * 11 + c * 5) % 101) / 100 }
            for filter in [ResizeFilter.bicubic, .area] {
                let out = img.resized(width: outW, height: 2, filter: filter)
                let k = ResampleKernel(inSize: w, outSize: outW, filter: filter)
                for c in 0..<3 {
                    for y in 0..<2 {
                        for x in 0..<outW {
                            var expected = 0.0
                            for t in 0..<k.counts[x] {
                                expected += Double(k.weights[x * k.stride + t])
                                    * Double(img.pixels[(c * 2 + y) * w + k.starts[x] + t])
                            }
                            XCTAssertEqual(Double(out.pixels[(c * 2 + y) * outW + x]), expected, accuracy: 1e-5,
                                           "\(w) -> \(outW), \(filter), plane \(c), (\(x), \(y))")
                        }
                    }
                }
            }
        }
    }

    /// The vertical pass (thirty-two columns at a time, then sixteen, eight, and one by one)
    /// against the kernel's weights summed in double precision, at widths that end in each of those.
    func testVerticalResamplingMatchesTheKernelSummedInDouble() {
        for (h, outH) in [(1000, 500), (37, 9), (17, 16), (64, 20)] {
            for w in [1, 7, 8, 15, 16, 27, 40, 59, 64] {
                let img = image(width: w, height: h) { c, x, y in Float((x * 13 + y * 37 + c * 5) % 101) / 100 }
                for filter in [ResizeFilter.bicubic, .area] {
                    let out = img.resized(width: w, height: outH, filter: filter)
                    let k = ResampleKernel(inSize: h, outSize: outH, filter: filter)
                    for c in 0..<3 {
                        for y in 0..<outH {
                            for x in 0..<w {
                                var expected = 0.0
                                for t in 0..<k.counts[y] {
                                    expected += Double(k.weights[y * k.stride + t])
                                        * Double(img.pixels[(c * h + k.starts[y] + t) * w + x])
                                }
                                XCTAssertEqual(Double(out.pixels[(c * outH + y) * w + x]), expected, accuracy: 1e-5,
                                               "\(h) -> \(outH), width \(w), \(filter), plane \(c), (\(x), \(y))")
                            }
                        }
                    }
                }
            }
        }
    }

    func testKernelRowsAreNormalised() {
        for filter in [ResizeFilter.bicubic, .area] {
            for (i, o) in [(3840, 512), (512, 3840), (7, 3), (100, 99), (1, 5), (5, 1)] {
                let k = ResampleKernel(inSize: i, outSize: o, filter: filter)
                for j in 0..<o {
                    XCTAssertGreaterThanOrEqual(k.starts[j], 0)
                    XCTAssertLessThanOrEqual(k.starts[j] + k.counts[j], i)
                    let sum = (0..<k.counts[j]).map { k.weights[j * k.stride + $0] }.reduce(0, +)
                    XCTAssertEqual(sum, 1, accuracy: 1e-5)
                }
            }
        }
    }
}
