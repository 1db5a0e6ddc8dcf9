@testable import Engine
import TestSupport
import XCTest

/// Straightforward convolution with explicit reflection padding: the reference the kernels must match.
func naiveConv(_ x: [Float], c: Int, h: Int, w: Int, weight: [Float], bias: [Float], oc: Int, k: Int,
               stride: Int, groups: Int, pad: Int, relu: Bool) -> (values: [Float], h: Int, w: Int) {
    let ho = (h + 2 * pad - k) / stride + 1, wo = (w + 2 * pad - k) / stride + 1
    let icg = c / groups, ocg = oc / groups
    func refl(_ i: Int, _ n: Int) -> Int { i < 0 ? -i : (i >= n ? 2 * (n - 1) - i : i) }
    var out = [Float](repeating: 0, count: oc * ho * wo)
    for o in 0..<oc {
        let g = o / ocg
        for y in 0..<ho {
            for xo in 0..<wo {
                var acc = Double(bias[o])
                for i in 0..<icg {
                    let ic = g * icg + i
                    for ky in 0..<k {
                        for kx in 0..<k {
                            let iy = refl(y * stride + ky - pad, h), ix = refl(xo * stride + kx - pad, w)
                            acc += Double(weight[((o * icg + i) * k + ky) * k + kx]) * Double(x[(ic * h + iy) * w + ix])
                        }
                    }
                }
                out[(o * ho + y) * wo + xo] = relu ? Float(max(acc, 0)) : Float(acc)
            }
        }
    }
    return (out, ho, wo)
}

func maxAbsDiff(_ a: [Float], _ b: [Float]) -> Float {
    precondition(a.count == b.count)
    return zip(a, b).map { abs($0 - $1) }.max() ?? 0
}

final class ConvolutionTests: XCTestCase {
    struct Case { let c, h, w, oc, k, stride, groups: Int; let relu: Bool }

    func check(_ t: Case, seed: UInt64) {
        var rng = SeededRandom(seed: seed)
        let x = rng.signedUnitFloats(t.c * t.h * t.w)
        let weight = rng.signedUnitFloats(t.oc * (t.c / t.groups) * t.k * t.k)
        let bias = rng.signedUnitFloats(t.oc)
        let pad = t.k / 2
        let ref = naiveConv(x, c: t.c, h: t.h, w: t.w, weight: weight, bias: bias, oc: t.oc, k: t.k,
                            stride: t.stride, groups: t.groups, pad: pad, relu: t.relu)
        let conv = Conv2D(weight: weight, bias: bias, inChannels: t.c, outChannels: t.oc, kernel: t.k,
                          stride: t.stride, groups: t.groups, activation: t.relu ? .relu : .none)
        let out = conv(Tensor(channels: t.c, height: t.h, width: t.w, values: x))
        XCTAssertEqual(out.height, ref.h, "\(t)")
        XCTAssertEqual(out.width, ref.w, "\(t)")
        let scale = Float(t.c / t.groups * t.k * t.k)
        XCTAssertLessThan(maxAbsDiff(out.values, ref.values), 2e-6 * scale + 1e-5, "\(t)")
    }

    func testDense3x3OddSizesAgainstNaive() {
        check(Case(c: 5, h: 7, w: 29, oc: 9, k: 3, stride: 1, groups: 1, relu: false), seed: 1)
        check(Case(c: 16, h: 13, w: 50, oc: 16, k: 3, stride: 1, groups: 1, relu: true), seed: 2)
        check(Case(c: 3, h: 2, w: 3, oc: 6, k: 3, stride: 1, groups: 1, relu: false), seed: 3)
    }

    /// Layers with 3 output channels (RGB outputs) run on the 3 x 32-pixel tile: widths below one
    /// vector, between 24 and 32, and with a partial second tile; stride 2 and groups of 3 too.
    func testThreeOutputChannelTilesAgainstNaive() {
        for (i, w) in [5, 27, 32, 45, 70].enumerated() {
            check(Case(c: 16, h: 6, w: w, oc: 3, k: 3, stride: 1, groups: 1, relu: i % 2 == 0), seed: 40 + UInt64(i))
        }
        check(Case(c: 7, h: 9, w: 41, oc: 3, k: 3, stride: 2, groups: 1, relu: true), seed: 46)
        check(Case(c: 4, h: 5, w: 37, oc: 6, k: 3, stride: 1, groups: 2, relu: false), seed: 47)
    }

    func testPointwise1x1AgainstNaive() {
        check(Case(c: 32, h: 5, w: 37, oc: 32, k: 1, stride: 1, groups: 1, relu: true), seed: 4)
        check(Case(c: 3, h: 4, w: 4, oc: 3, k: 1, stride: 1, groups: 1, relu: false), seed: 5)
    }

    func testLarge9x9KernelsAgainstNaive() {
        check(Case(c: 3, h: 19, w: 27, oc: 16, k: 9, stride: 1, groups: 1, relu: true), seed: 6)
        check(Case(c: 16, h: 12, w: 25, oc: 3, k: 9, stride: 1, groups: 1, relu: false), seed: 7)
    }

    func testGroupedDepthwiseAndStride2AgainstNaive() {
        check(Case(c: 16, h: 17, w: 23, oc: 32, k: 3, stride: 2, groups: 16, relu: true), seed: 8)   // MicroAST enc1.2
        check(Case(c: 64, h: 9, w: 31, oc: 64, k: 3, stride: 1, groups: 64, relu: false), seed: 9)   // depthwise
        check(Case(c: 64, h: 8, w: 26, oc: 32, k: 3, stride: 1, groups: 32, relu: true), seed: 10)   // 2 in -> 1 out per group
        check(Case(c: 8, h: 15, w: 21, oc: 12, k: 3, stride: 2, groups: 1, relu: false), seed: 11)   // dense stride 2
        check(Case(c: 6, h: 11, w: 13, oc: 6, k: 5, stride: 2, groups: 3, relu: true), seed: 12)
    }
}

final class OpsTests: XCTestCase {
    func testMaxPoolPicksTheMaximumOfEachWindow() {
        let t = Tensor(channels: 1, height: 2, width: 4, values: [1, 5, -2, 0, 3, 2, 7, -1])
        XCTAssertEqual(Ops.maxPool2x2(t).values, [5, 7])
    }

    func testNearestUpsampleRepeatsPixels() {
        let t = Tensor(channels: 1, height: 1, width: 2, values: [1, 2])
        XCTAssertEqual(Ops.upsampleNearest2x(t).values, [1, 1, 2, 2, 1, 1, 2, 2])
    }

    func testBilinearUpsampleUsesHalfPixelCentresAndClampsEdges() {
        var rng = SeededRandom(seed: 13)
        let (c, h, w) = (2, 5, 7)
        let x = rng.signedUnitFloats(c * h * w)
        let out = Ops.upsampleBilinear2x(Tensor(channels: c, height: h, width: w, values: x))
        // Reference: PyTorch align_corners=false coordinates, clipped, 2-D interpolation.
        func coord(_ o: Int, _ n: Int) -> (Int, Int, Float) {
            let s = min(max((Float(o) + 0.5) / 2 - 0.5, 0), Float(n - 1))
            let i0 = Int(s.rounded(.down))
            return (i0, min(i0 + 1, n - 1), s - Float(i0))
        }
        var ref = [Float]()
        for ch in 0..<c {
            for yo in 0..<2 * h {
                let (y0, y1, wy) = coord(yo, h)
                for xo in 0..<2 * w {
                    let (x0, x1, wx) = coord(xo, w)
                    let v = { (yy: Int, xx: Int) in x[(ch * h + yy) * w + xx] }
                    ref.append(v(y0, x0) * (1 - wy) * (1 - wx) + v(y0, x1) * (1 - wy) * wx + v(y1, x0) * wy * (1 - wx) + v(y1, x1) * wy * wx)
                }
            }
        }
        XCTAssertLessThan(maxAbsDiff(out.values, ref), 1e-6)
    }

    func testMeanStdIsUnbiasedWithEpsilon() {
        let t = Tensor(channels: 2, height: 1, width: 4, values: [1, 2, 3, 4, 5, 5, 5, 5])
        let (m, s) = Ops.meanStd(t)
        XCTAssertEqual(m[0], 2.5, accuracy: 1e-6)
        XCTAssertEqual(s[0], Float((5.0 / 3.0 + 1e-5).squareRoot()), accuracy: 1e-6)
        XCTAssertEqual(s[1], Float((1e-5).squareRoot()), accuracy: 1e-7)
    }

    func testCombineAndAffineArePerChannel() {
        let a = Tensor(channels: 2, height: 1, width: 9, values: (0..<18).map(Float.init))
        let b = Tensor(channels: 2, height: 1, width: 9, values: [Float](repeating: 1, count: 18))
        let y = Ops.combine(a, [2, -1], b, [1, 0.5], relu: true)
        XCTAssertEqual(y[0, 0, 3], 7)
        XCTAssertEqual(y[1, 0, 0], 0)      // -9 + 0.5 clamped by relu
        Ops.affineInPlace(a, scale: [1, 2], shift: [0, 1])
        XCTAssertEqual(a[1, 0, 8], 35)
    }

    func testReflectionNeverRepeatsTheEdgePixel() {
        XCTAssertEqual((-3...6).map { reflect($0, 4) }, [3, 2, 1, 0, 1, 2, 3, 2, 1, 0])
        XCTAssertEqual(reflect(-2, 1), 0)
    }
}

final class FusedInputTests: XCTestCase {
    /// Convolving a virtually upsampled input equals upsampling first, for both modes and both paths.
    func testFusedUpsamplingEqualsExplicitUpsampling() {
        var rng = SeededRandom(seed: 21)
        for (c, oc, groups, k) in [(64, 32, 32, 3), (32, 16, 16, 3), (8, 8, 1, 3), (16, 3, 1, 9)] {
            let (h, w) = (7, 13)
            let x = Tensor(channels: c, height: h, width: w, values: rng.signedUnitFloats(c * h * w))
            let conv = Conv2D(weight: rng.signedUnitFloats(oc * (c / groups) * k * k), bias: rng.signedUnitFloats(oc), inChannels: c,
                              outChannels: oc, kernel: k, groups: groups, activation: .relu)
            for (mode, explicit) in [(ConvInput.Mode.bilinear2x, Ops.upsampleBilinear2x(x)), (.nearest2x, Ops.upsampleNearest2x(x))] {
                let fused = conv(ConvInput(x, mode: mode))
                let reference = conv(explicit)
                XCTAssertEqual(fused.shapeDescription, reference.shapeDescription)
                XCTAssertLessThan(maxAbsDiff(fused.values, reference.values), 1e-4, "\(mode) c\(c) g\(groups)")
            }
        }
    }
}

final class WinogradTests: XCTestCase {
    /// The 2x2 max pool taken inside F(4x4)'s output transform equals convolving, then pooling:
    /// odd sizes (ceil-mode windows cut by the edge), heights and widths off the 4-pixel tile and
    /// the 32-pixel store, with and without ReLU.
    func testPoolFusedIntoWinogradMatchesConvThenPool() {
        var rng = SeededRandom(seed: 77)
        for (c, oc, h, w, relu) in [(16, 16, 7, 9, true), (16, 20, 13, 50, false), (32, 16, 2, 3, true),
                                    (16, 16, 1, 1, true), (24, 16, 33, 64, true), (16, 32, 10, 63, false), (17, 16, 5, 37, true)] {
            let x = Tensor(channels: c, height: h, width: w, values: rng.signedUnitFloats(c * h * w))
            let conv = Conv2D(weight: rng.signedUnitFloats(oc * c * 9), bias: rng.signedUnitFloats(oc), inChannels: c, outChannels: oc,
                              kernel: 3, activation: relu ? .relu : .none)
            XCTAssertNotNil(conv.winograd4, "\(c)->\(oc) should take the F(4x4) path, or the test compares conv+pool with itself")
            let fused = conv.pooled(x)
            let ref = Ops.maxPool2x2(conv(x))
            XCTAssertEqual([fused.channels, fused.height, fused.width], [oc, (h + 1) / 2, (w + 1) / 2])
            XCTAssertEqual(maxAbsDiff(fused.values, ref.values), 0, "\(c)->\(oc) \(h)x\(w) relu \(relu)")
        }
    }

    /// Winograd F(4x4,3x3) gives the direct convolution's result, odd sizes and fused upsampling included.
    func testWinogradMatchesDirectConvolution() {
        var rng = SeededRandom(seed: 31)
        for (c, oc, h, w) in [(16, 16, 7, 9), (32, 20, 13, 50), (64, 64, 2, 3), (17, 33, 2, 40), (24, 16, 31, 8), (64, 70, 13, 37), (96, 64, 5, 9)] {
            let x = Tensor(channels: c, height: h, width: w, values: rng.signedUnitFloats(c * h * w))
            let weight = rng.signedUnitFloats(oc * c * 9), bias = rng.signedUnitFloats(oc)
            let ref = naiveConv(x.values, c: c, h: h, w: w, weight: weight, bias: bias, oc: oc, k: 3, stride: 1, groups: 1, pad: 1, relu: true)
            // Small layers too: the production threshold (16 channels) would send some to the direct path.
            var options = EngineOptions()
            options.winogradMinChannels = 1
            let conv = Conv2D(weight: weight, bias: bias, inChannels: c, outChannels: oc, kernel: 3, activation: .relu, options: options)
            options.winograd = false
            let direct = Conv2D(weight: weight, bias: bias, inChannels: c, outChannels: oc, kernel: 3, activation: .relu, options: options)
            XCTAssertNotNil(conv.winograd4, "F(4x4) not built")
            let fast = conv(x)
            // F(4x4) rounds a little more than direct (its transforms scale by up to 8): bound relative to the output size.
            let scale = max(1, ref.values.map(abs).max()!)
            XCTAssertLessThan(maxAbsDiff(fast.values, ref.values), 3e-5 * scale, "F(4x4) \(c)->\(oc) \(h)x\(w)")
            let up = conv(ConvInput(x, mode: .nearest2x))
            let upDirect = direct(ConvInput(x, mode: .nearest2x))
            XCTAssertLessThan(maxAbsDiff(up.values, upDirect.values), 3e-5 * max(1, upDirect.values.map(abs).max()!))
        }
    }
}

extension WinogradTests {
    /// Tasks that cut rows into column chunks (rows of more than 144 tiles, a last chunk of a few
    /// tiles) compute exactly what whole-row tasks compute, pooled or not.
    func testColumnChunkedTasksMatchWholeRowTasks() {
        var rng = SeededRandom(seed: 5)
        for (c, oc, h, w) in [(16, 16, 9, 700), (16, 24, 6, 613), (20, 16, 5, 1190)] {
            let x = Tensor(channels: c, height: h, width: w, values: rng.signedUnitFloats(c * h * w))
            let weight = rng.signedUnitFloats(oc * c * 9), bias = rng.signedUnitFloats(oc)
            var chunked = EngineOptions()
            chunked.winogradTaskBytes = 1                            // the 144-tile minimum: rows of 154-298 tiles are cut
            let small = Conv2D(weight: weight, bias: bias, inChannels: c, outChannels: oc, kernel: 3, activation: .relu, options: chunked)
            var whole = EngineOptions()
            whole.winogradTaskBytes = 1 << 30
            let large = Conv2D(weight: weight, bias: bias, inChannels: c, outChannels: oc, kernel: 3, activation: .relu, options: whole)
            XCTAssertEqual(maxAbsDiff(small(x).values, large(x).values), 0, "\(c)->\(oc) \(h)x\(w)")
            XCTAssertEqual(maxAbsDiff(small.pooled(x).values, large.pooled(x).values), 0, "pooled \(c)->\(oc) \(h)x\(w)")
            let ref = naiveConv(x.values, c: c, h: h, w: w, weight: weight, bias: bias, oc: oc, k: 3, stride: 1, groups: 1, pad: 1, relu: true)
            XCTAssertLessThan(maxAbsDiff(small(x).values, ref.values), 3e-5 * max(1, ref.values.map(abs).max()!), "\(c)->\(oc) \(h)x\(w)")
        }
    }
}

final class PolyphaseTests: XCTestCase {
    /// A 3x3 conv of a nearest-upsampled input computed as four 2x2 convs of the small input gives
    /// the direct convolution of the explicitly upsampled tensor (edges, odd sizes, partial tiles).
    func testPolyphaseMatchesConvolutionOfTheUpsampledTensor() {
        var rng = SeededRandom(seed: 77)
        for (c, oc, h, w) in [(3, 5, 2, 2), (16, 16, 7, 13), (5, 3, 9, 30), (16, 24, 4, 25), (64, 8, 3, 2)] {
            let x = Tensor(channels: c, height: h, width: w, values: rng.signedUnitFloats(c * h * w))
            let weight = rng.signedUnitFloats(oc * c * 9), bias = rng.signedUnitFloats(oc)
            let conv = Conv2D(weight: weight, bias: bias, inChannels: c, outChannels: oc, kernel: 3, activation: .relu)
            XCTAssertNotNil(conv.polyphase)
            let fast = conv(ConvInput(x, mode: .nearest2x))
            var plain = EngineOptions()
            plain.polyphase = false
            plain.winograd = false
            let reference = Conv2D(weight: weight, bias: bias, inChannels: c, outChannels: oc, kernel: 3, activation: .relu, options: plain)(Ops.upsampleNearest2x(x))
            XCTAssertEqual(fast.shapeDescription, reference.shapeDescription)
            XCTAssertLessThan(maxAbsDiff(fast.values, reference.values), 2e-5 * max(1, reference.values.map(abs).max()!), "\(c)->\(oc) \(h)x\(w)")
        }
    }
}

