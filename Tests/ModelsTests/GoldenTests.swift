import Engine
import Foundation
import Models
import XCTest

/// Where the shared models and golden cases live, relative to this repository (README.md).
enum SharedData {
    static let repoRoot = URL(fileURLWithPath: ProcessInfo.processInfo.environment["STYLIST_REPO"] ?? URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path)
    /// `STYLIST_SHARED`, else `../shared` next to the checkout (README.md).
    static var shared: String { ProcessInfo.processInfo.environment["STYLIST_SHARED"] ?? repoRoot.appendingPathComponent("../shared").standardized.path }
    static var modelsDirectory: String { shared + "/models" }
    static var goldenDirectory: String { shared + "/golden" }
    static func goldenCases() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: goldenDirectory)
            .filter { $0.hasSuffix(".safetensors") }.map { String($0.dropLast(".safetensors".count)) }.sorted()
    }
}

func tensor(_ st: SafeTensors, _ name: String) throws -> Tensor {
    let shape = try st.shape(name)
    return Tensor(channels: shape[0], height: shape[1], width: shape[2], values: try st.floats(name))
}

final class GoldenTests: XCTestCase {
    /// Every golden case from the independent reference, run through the engine from its float inputs.
    func testEveryGoldenCaseMatchesTheReference() throws {
        let cases = try SharedData.goldenCases()
        XCTAssertGreaterThanOrEqual(cases.count, 8, "golden cases missing from \(SharedData.goldenDirectory)")
        var networks: [String: StyleNetwork] = [:]
        for name in cases {
            let st = try SafeTensors(contentsOf: SharedData.goldenDirectory + "/\(name).safetensors")
            let model = st.metadata["model"]!
            let alpha = Float(st.metadata["alpha"]!)!
            let weights = try JSONDecoder().decode([Float].self, from: Data(st.metadata["style_weights"]!.utf8))
            let network = try networks[model] ?? ModelLoader.load(path: SharedData.modelsDirectory + "/\(model).safetensors")
            networks[model] = network
            let content = try tensor(st, "content")
            let styles = try (0..<weights.count).map { try tensor(st, "style\($0)") }
            let expected = try tensor(st, "output")
            let ctx = RunContext()
            let out = try network.run(content: content, styleImages: styles, weights: weights, alpha: alpha, ctx)
            XCTAssertEqual(out.shapeDescription, expected.shapeDescription, name)
            var maxDiff: Float = 0
            for i in 0..<expected.count { maxDiff = max(maxDiff, abs(out.data[i] - expected.data[i])) }
            let tolerance = Float(st.metadata["tolerance_max_abs"]!)!
            XCTAssertLessThanOrEqual(maxDiff, tolerance, "\(name): max abs difference \(maxDiff)")
            print("golden \(name): max abs diff \(maxDiff) (tolerance \(tolerance))")
        }
    }
}

final class BandedExecutionTests: XCTestCase {
    /// The ultra-resolution path (row bands with halos) gives the golden result on a small image
    /// forced through it, with bands small enough that every stage has interior and edge bands.
    func testBandedMicroASTMatchesTheGoldenCases() throws {
        try checkBanded(model: "microast", cases: ["microast-cornell-matisse", "microast-sailboat-brush-a06"])
    }

    /// The same for AdaIN VGG-19, whose encoder runs its full-resolution layers in bands on large images.
    func testBandedAdaINVGGMatchesTheGoldenCases() throws {
        try checkBanded(model: "adain-vgg19-cd16x", cases: ["cd16x-cornell-matisse", "cd16x-sailboat-mondrian-a05"])
    }

    private func checkBanded(model: String, cases: [String]) throws {
        let network = try ModelLoader.load(path: SharedData.modelsDirectory + "/\(model).safetensors")
        for name in cases {
            let st = try SafeTensors(contentsOf: SharedData.goldenDirectory + "/\(name).safetensors")
            let alpha = Float(st.metadata["alpha"]!)!
            for bandRows in [8, 12, 40] {
                let ctx = RunContext()
                ctx.forcedBandRows = bandRows
                let out = try network.run(content: try tensor(st, "content"), styleImages: [try tensor(st, "style0")],
                                          weights: [1], alpha: alpha, ctx)
                let expected = try tensor(st, "output")
                var maxDiff: Float = 0
                for i in 0..<expected.count { maxDiff = max(maxDiff, abs(out.data[i] - expected.data[i])) }
                XCTAssertLessThanOrEqual(maxDiff, Float(st.metadata["tolerance_max_abs"]!)!, "\(name) bands of \(bandRows)")
            }
        }
    }
}
