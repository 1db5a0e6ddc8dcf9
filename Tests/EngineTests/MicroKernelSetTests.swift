@testable import Engine
import TestSupport
import XCTest

/// Every convolution path on each micro-kernel set (AVX-512: 48- and 64-pixel tiles; AVX2: 24 and
/// 32), against the plain reference convolution. Tile edges are where these differ: partial tiles,
/// widths just over a tile, and reads past the right edge of padded rows, panels and Winograd rows.
final class MicroKernelSetTests: XCTestCase {
    func testAVX512KernelsMatchTheReferenceOnEveryPath() throws {
        guard EngineBuild.runsAVX512Kernels else {
            throw XCTSkip("AVX-512 kernels not run: this CPU (or OS) lacks AVX-512 F/VL/DQ/BW with zmm state, or this is a portable build; testAVX2KernelsMatchTheReferenceOnEveryPath covers the AVX2 kernels")
        }
        checkEveryPath(avx512: true)
    }

    func testAVX2KernelsMatchTheReferenceOnEveryPath() {
        checkEveryPath(avx512: false)
    }

    func testAVX512KernelsMatchTheReferenceAtWidths1To100() throws {
        guard EngineBuild.runsAVX512Kernels else {
            throw XCTSkip("AVX-512 kernels not run: this CPU (or OS) lacks AVX-512 F/VL/DQ/BW with zmm state, or this is a portable build")
        }
        checkWidths(avx512: true)
    }

    func testAVX2KernelsMatchTheReferenceAtWidths1To100() {
        checkWidths(avx512: false)
    }

    /// The forced switch picks the AVX2 kernels whatever the CPU.
    func testOptionOffAlwaysSelectsTheAVX2Kernels() {
        var options = EngineOptions()
        options.avx512 = false
        let conv = Conv2D(weight: [Float](repeating: 1, count: 9), bias: [0], inChannels: 1, outChannels: 1, kernel: 3, options: options)
        XCTAssertFalse(conv.kernels.avx512)
        XCTAssertEqual(conv.kernels.tilePixels, 24)
        XCTAssertEqual(Conv2D(weight: [1], bias: [0], inChannels: 1, outChannels: 1, kernel: 1).kernels.avx512, EngineBuild.runsAVX512Kernels)
    }

    // MARK: - Cases

    enum Path: String { case direct, winograd, polyphase }

    func options(avx512: Bool, path: Path) -> EngineOptions {
        var o = EngineOptions()
        o.avx512 = avx512
        switch path {
        case .direct: o.winograd = false; o.polyphase = false
        case .winograd: o.winogradMinChannels = 1; o.polyphase = false
        case .polyphase: o.winograd = false
        }
        return o
    }

    /// One layer on one path and kernel set against `naiveConv` (of the upsampled input for polyphase).
    func check(avx512: Bool, path: Path, c: Int, oc: Int, h: Int, w: Int, k: Int = 3, stride: Int = 1,
               groups: Int = 1, relu: Bool, seed: UInt64, file: StaticString = #filePath, line: UInt = #line) {
        var rng = SeededRandom(seed: seed)
        let x = Tensor(channels: c, height: h, width: w, values: rng.signedUnitFloats(c * h * w))
        let weight = rng.signedUnitFloats(oc * (c / groups) * k * k)
        let bias = rng.signedUnitFloats(oc)
        let conv = Conv2D(weight: weight, bias: bias, inChannels: c, outChannels: oc, kernel: k, stride: stride, groups: groups,
                          activation: relu ? .relu : .none, options: options(avx512: avx512, path: path))
        let label = "\(avx512 ? "AVX-512" : "AVX2") \(path.rawValue) \(c)->\(oc) k\(k) s\(stride) g\(groups) \(h)x\(w)"
        XCTAssertEqual(conv.kernels.avx512, avx512, "kernel set not selected: \(label)", file: file, line: line)
        let input = path == .polyphase ? Ops.upsampleNearest2x(x) : x
        let out: Tensor
        switch path {
        case .polyphase:
            XCTAssertNotNil(conv.polyphase, "no polyphase weights: \(label)", file: file, line: line)
            out = conv(ConvInput(x, mode: .nearest2x))
        case .winograd:
            XCTAssertNotNil(conv.winograd4, "no Winograd weights: \(label)", file: file, line: line)
            out = conv(x)
        case .direct:
            out = conv(x)
        }
        let ref = naiveConv(input.values, c: c, h: input.height, w: input.width, weight: weight, bias: bias, oc: oc, k: k,
                            stride: stride, groups: groups, pad: k / 2, relu: relu)
        XCTAssertEqual([out.channels, out.height, out.width], [oc, ref.h, ref.w], label, file: file, line: line)
        guard out.values.count == ref.values.count else { return }
        // Winograd and polyphase add up weights or transformed values first, so they round a little more.
        let magnitude = max(1, ref.values.map(abs).max() ?? 1)
        let tolerance = path == .direct ? 2e-6 * Float(c / groups * k * k) + 1e-5 : 3e-5 * magnitude
        XCTAssertLessThan(maxAbsDiff(out.values, ref.values), tolerance, label, file: file, line: line)
    }

    func checkEveryPath(avx512: Bool) {
        var seed: UInt64 = 100
        func next() -> UInt64 { seed += 1; return seed }
        // Direct dense 3x3: widths under one vector, just over a 24- and a 48-pixel tile, several tiles.
        for (c, oc, h, w) in [(5, 9, 7, 29), (16, 16, 6, 49), (8, 12, 5, 97), (3, 6, 2, 3), (16, 4, 4, 150)] {
            check(avx512: avx512, path: .direct, c: c, oc: oc, h: h, w: w, relu: seed % 2 == 0, seed: next())
        }
        // 1x1 layers: tiles along whole planes, one partial tile per plane.
        for (c, oc, h, w) in [(32, 32, 5, 37), (3, 3, 4, 4), (16, 7, 7, 7), (64, 8, 1, 49), (8, 16, 13, 11)] {
            check(avx512: avx512, path: .direct, c: c, oc: oc, h: h, w: w, k: 1, relu: seed % 2 == 0, seed: next())
        }
        // Grouped, depthwise and strided layers (MicroAST's shapes among them), and 9x9 heads and tails.
        check(avx512: avx512, path: .direct, c: 16, oc: 32, h: 17, w: 51, stride: 2, groups: 16, relu: true, seed: next())
        check(avx512: avx512, path: .direct, c: 64, oc: 64, h: 9, w: 49, groups: 64, relu: false, seed: next())
        check(avx512: avx512, path: .direct, c: 64, oc: 32, h: 8, w: 26, groups: 32, relu: true, seed: next())
        check(avx512: avx512, path: .direct, c: 8, oc: 12, h: 15, w: 99, stride: 2, relu: false, seed: next())
        check(avx512: avx512, path: .direct, c: 6, oc: 6, h: 11, w: 13, k: 5, stride: 2, groups: 3, relu: true, seed: next())
        check(avx512: avx512, path: .direct, c: 3, oc: 16, h: 12, w: 53, k: 9, relu: true, seed: next())
        // 3 output channels: the 3 x 32 / 3 x 64 tile, partial and just over one tile, dense and 9x9.
        for w in [5, 27, 33, 49, 63, 65, 70, 130] {
            check(avx512: avx512, path: .direct, c: 16, oc: 3, h: 5, w: w, relu: w % 2 == 0, seed: next())
        }
        check(avx512: avx512, path: .direct, c: 16, oc: 3, h: 12, w: 67, k: 9, relu: false, seed: next())
        check(avx512: avx512, path: .direct, c: 7, oc: 3, h: 9, w: 41, stride: 2, relu: true, seed: next())
        // Winograd F(4x4): its matrix products run the micro-kernel over rows of transformed tiles.
        for (c, oc, h, w) in [(16, 16, 7, 9), (32, 20, 13, 50), (17, 33, 2, 40), (24, 16, 31, 8), (64, 70, 13, 37),
                              (16, 16, 9, 197), (3, 5, 18, 193)] {
            check(avx512: avx512, path: .winograd, c: c, oc: oc, h: h, w: w, relu: true, seed: next())
        }
        // Polyphase (nearest-upsampled inputs of narrow layers), source widths around the tiles.
        for (c, oc, h, w) in [(3, 5, 2, 2), (16, 16, 7, 13), (5, 3, 9, 30), (16, 24, 4, 25), (8, 8, 3, 49), (4, 7, 3, 97)] {
            check(avx512: avx512, path: .polyphase, c: c, oc: oc, h: h, w: w, relu: true, seed: next())
        }
    }

    /// Every width from 1 (1x1) or 2 (3x3: the reference's reflection needs two columns) to 100 on
    /// the direct, 1x1, 3-channel, Winograd and polyphase paths.
    func checkWidths(avx512: Bool) {
        for w in 1...100 {
            let seed = UInt64(1000 + w)
            check(avx512: avx512, path: .direct, c: 6, oc: 5, h: 2, w: w, k: 1, relu: true, seed: seed)
            guard w >= 2 else { continue }
            check(avx512: avx512, path: .direct, c: 4, oc: 5, h: 3, w: w, relu: false, seed: seed)
            check(avx512: avx512, path: .direct, c: 5, oc: 3, h: 2, w: w, relu: true, seed: seed)
            check(avx512: avx512, path: .winograd, c: 4, oc: 6, h: 5, w: w, relu: false, seed: seed)
            check(avx512: avx512, path: .polyphase, c: 3, oc: 5, h: 2, w: w, relu: true, seed: seed)
        }
    }
}
