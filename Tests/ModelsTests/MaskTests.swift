import Engine
import Foundation
import Models
import XCTest

/// Spatial control (two styles, one mask) against the reference's golden mask cases.
enum MaskGolden {
    static var directory: String { SharedData.shared + "/golden-mask" }
    static let cases = ["microast-cornell-mask", "cd16x-goldengate-mask-a07"]

    struct Case {
        let name: String
        let model: String
        let alpha: Float
        let tolerance: Float
        let content: Tensor
        let styles: (Tensor, Tensor)
        let mask: RegionMask
        let expected: Tensor
    }

    static func load(_ name: String) throws -> Case {
        let st = try SafeTensors(contentsOf: directory + "/\(name).safetensors")
        XCTAssertEqual(st.metadata["mask"], "true", name)
        let shape = try st.shape("mask")
        let mask = RegionMask(height: shape[0], width: shape[1], values: try st.floats("mask").map { $0 > 0.5 ? 1 : 0 })
        return Case(name: name, model: st.metadata["model"]!, alpha: Float(st.metadata["alpha"]!)!,
                    tolerance: Float(st.metadata["tolerance_max_abs"]!)!, content: try tensor(st, "content"),
                    styles: (try tensor(st, "style0"), try tensor(st, "style1")), mask: mask, expected: try tensor(st, "output"))
    }

    static func maxDiff(_ a: Tensor, _ b: Tensor) -> Float {
        precondition(a.count == b.count)
        var d: Float = 0
        for i in 0..<a.count { d = max(d, abs(a.data[i] - b.data[i])) }
        return d
    }
}

final class MaskGoldenTests: XCTestCase {
    var networks: [String: StyleNetwork] = [:]
    func network(_ model: String) throws -> StyleNetwork {
        if let n = networks[model] { return n }
        let n = try ModelLoader.load(path: SharedData.modelsDirectory + "/\(model).safetensors")
        networks[model] = n
        return n
    }

    /// Both golden mask cases, from their float inputs, whole and in forced row bands.
    func testGoldenMaskCasesMatchTheReference() throws {
        for name in MaskGolden.cases {
            let c = try MaskGolden.load(name)
            let net = try network(c.model)
            XCTAssertGreaterThan(c.mask.foregroundCount, 0, name)
            XCTAssertLessThan(c.mask.foregroundCount, c.mask.height * c.mask.width, name)
            for bandRows in [nil, 8, 12, 40] as [Int?] {
                let ctx = RunContext()
                ctx.forcedBandRows = bandRows
                let out = try net.run(content: c.content, styleImages: c.styles, mask: c.mask, alpha: c.alpha, ctx)
                XCTAssertEqual(out.shapeDescription, c.expected.shapeDescription, name)
                let d = MaskGolden.maxDiff(out, c.expected)
                XCTAssertLessThanOrEqual(d, c.tolerance, "\(name), bands \(bandRows.map(String.init) ?? "none"): max abs difference \(d)")
                if bandRows == nil { print("golden mask \(name): max abs diff \(d) (tolerance \(c.tolerance))") }
            }
        }
    }

    /// An all-white mask is the first style alone, an all-black one the second (at the case's alpha and at 0.6).
    func testUniformMasksEqualTheSingleStyleResults() throws {
        for name in MaskGolden.cases {
            let c = try MaskGolden.load(name)
            let net = try network(c.model)
            for alpha in [c.alpha, 0.6] {
                for (white, style) in [(true, c.styles.0), (false, c.styles.1)] {
                    let mask = RegionMask(height: c.content.height, width: c.content.width, filled: white)
                    let masked = try net.run(content: c.content, styleImages: c.styles, mask: mask, alpha: alpha, RunContext())
                    let single = try net.run(content: c.content, styleImages: [style], weights: [1], alpha: alpha, RunContext())
                    let d = MaskGolden.maxDiff(masked, single)
                    XCTAssertLessThanOrEqual(d, 1e-4, "\(name) alpha \(alpha) all \(white ? "white" : "black"): \(d)")
                }
            }
        }
    }

    /// A mask at another size than the content is sampled at pixel centres: a mask at half the
    /// content's size gives exactly the result of the same mask scaled up 2x by repetition.
    func testMaskAtAnotherSizeIsSampledAtPixelCentres() throws {
        let c = try MaskGolden.load("microast-cornell-mask")
        let net = try network(c.model)
        let h = c.content.height / 2, w = c.content.width / 2
        var small = [UInt8](repeating: 0, count: h * w)
        for y in 0..<h { for x in 0..<w { small[y * w + x] = (x * 3 + y * 2) % 11 < 6 ? 1 : 0 } }
        var big = [UInt8](repeating: 0, count: 4 * h * w)
        for y in 0..<(2 * h) { for x in 0..<(2 * w) { big[y * 2 * w + x] = small[(y / 2) * w + x / 2] } }
        let a = try net.run(content: c.content, styleImages: c.styles, mask: RegionMask(height: h, width: w, values: small), alpha: 1, RunContext())
        let b = try net.run(content: c.content, styleImages: c.styles, mask: RegionMask(height: 2 * h, width: 2 * w, values: big), alpha: 1, RunContext())
        XCTAssertEqual(a.values, b.values)
    }

    func testRegionStatisticsFollowTheSpec() {
        // 2 channels, 3x4 map; foreground = 5 positions, background = 7.
        let values: [Float] = (0..<24).map { Float(($0 * 7) % 13) - 4 }
        let x = Tensor(channels: 2, height: 3, width: 4, values: values)
        let bits: [UInt8] = [1, 0, 0, 1, 1, 0, 0, 0, 1, 1, 0, 0]
        let stats = Ops.regionMeanStd(x, RegionMask(height: 3, width: 4, values: bits))
        for c in 0..<2 {
            for (fg, region) in [(true, stats.foreground!), (false, stats.background!)] {
                let v = (0..<12).filter { (bits[$0] == 1) == fg }.map { Double(values[c * 12 + $0]) }
                let mean = v.reduce(0, +) / Double(v.count)
                let variance = v.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(v.count - 1)
                XCTAssertEqual(Double(region.mean[c]), mean, accuracy: 1e-5)
                XCTAssertEqual(Double(region.std[c]), (variance + 1e-5).squareRoot(), accuracy: 1e-5)
            }
        }
        // One position: the whole map's statistics; empty: nil.
        var one = [UInt8](repeating: 0, count: 12); one[5] = 1
        let s1 = Ops.regionMeanStd(x, RegionMask(height: 3, width: 4, values: one))
        let whole = Ops.meanStd(x)
        XCTAssertEqual(s1.foreground!.mean, whole.mean)
        XCTAssertEqual(s1.foreground!.std, whole.std)
        let s0 = Ops.regionMeanStd(x, RegionMask(height: 3, width: 4, filled: false))
        XCTAssertNil(s0.foreground)
        XCTAssertEqual(s0.background!.mean, whole.mean)
    }

    func testCentreSampling() {
        // floor((dst + 0.5) * src / dst)
        XCTAssertEqual(RegionMask.centreIndices(4, 10), [1, 3, 6, 8])
        XCTAssertEqual(RegionMask.centreIndices(10, 4), [0, 0, 1, 1, 1, 2, 2, 3, 3, 3])
        XCTAssertEqual(RegionMask.centreIndices(3, 3), [0, 1, 2])
    }
}
