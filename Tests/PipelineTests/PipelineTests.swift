import Engine
import Foundation
import ImageCodecs
import Models
import StylePipeline
import XCTest

enum Shared {
    static let repoRoot = URL(fileURLWithPath: ProcessInfo.processInfo.environment["STYLIST_REPO"]
        ?? URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path)
    /// `STYLIST_SHARED`, else `../shared` next to the checkout (README.md).
    static var shared: String { ProcessInfo.processInfo.environment["STYLIST_SHARED"] ?? repoRoot.appendingPathComponent("../shared").standardized.path }
    static var models: String { shared + "/models" }
    static var golden: String { shared + "/golden" }
    static var images: String { shared + "/images" }
    static func bytes(_ path: String) throws -> [UInt8] { [UInt8](try Data(contentsOf: URL(fileURLWithPath: path))) }
}

final class PipelineTests: XCTestCase {
    /// The golden cases include the random-weight benchmark network, so this catalog offers it.
    let catalog = ModelCatalog(directory: Shared.models, includeBenchmarkOnly: true)

    /// Each golden case's PNGs through decode, the pipeline and PNG encoding: within 2 levels of the expected PNG.
    func testGoldenPNGsEndToEnd() throws {
        let names = try FileManager.default.contentsOfDirectory(atPath: Shared.golden)
            .filter { $0.hasSuffix(".expected.png") }.map { String($0.dropLast(".expected.png".count)) }.sorted()
        XCTAssertGreaterThanOrEqual(names.count, 8)
        for name in names {
            let meta = try SafeTensors(contentsOf: "\(Shared.golden)/\(name).safetensors").metadata
            var options = StylizeOptions()
            options.alpha = Float(meta["alpha"]!)!
            options.styleWeights = try JSONDecoder().decode([Float].self, from: Data(meta["style_weights"]!.utf8))
            let content = try Stylizer.decode(try Shared.bytes("\(Shared.golden)/\(name).content.png"), input: "content")
            let styles = try (0..<options.styleWeights!.count).map {
                StyleInput.image(try Stylizer.decode(try Shared.bytes("\(Shared.golden)/\(name).style\($0).png"), input: "style"))
            }
            let result = try Stylizer(network: catalog.network(named: meta["model"]!)).stylize(content: content, styles: styles, options: options)
            let png = try Stylizer.encode(result, options: options)
            let ours = try ImageDecoder.decode(png)
            let expected = try ImageDecoder.decode(try Shared.bytes("\(Shared.golden)/\(name).expected.png"))
            XCTAssertEqual(ours.width, expected.width, name)
            XCTAssertEqual(ours.height, expected.height, name)
            let worst = zip(ours.pixels, expected.pixels).map { abs($0 - $1) * 255 }.max()!
            XCTAssertLessThanOrEqual(worst, 2.01, "\(name): worst channel difference \(worst) levels")
        }
    }

    /// A non-multiple-of-8 content comes back at exactly its (resized) size.
    func testOutputKeepsTheResizedContentSize() throws {
        let content = try Stylizer.decode(try Shared.bytes("\(Shared.images)/content/cornell.jpg"), input: "content")
        let style = try Stylizer.decode(try Shared.bytes("\(Shared.images)/style/sketch.png"), input: "style")
        var options = StylizeOptions()
        options.maxSize = 101
        for model in ["microast", "adain-vgg19-cd16x"] {
            let r = try Stylizer(network: catalog.network(named: model)).stylize(content: content, styles: [.image(style)], options: options)
            let expected = PlanarImage.fittingSize(width: content.width, height: content.height, maxSide: 101)
            let image = r.image
            XCTAssertEqual(image.width, expected.width, model)
            XCTAssertEqual(image.height, expected.height, model)
            XCTAssertEqual(max(image.width, image.height), 101)
            // The network's output is padded to its size multiple: encoding reads the picture out
            // of it in place and writes the same bytes as encoding the cropped copy.
            XCTAssertEqual(try Stylizer.encode(r, options: options), try ImageEncoder.png(image), model)
            var jpeg = options
            jpeg.format = .jpeg
            XCTAssertEqual(try Stylizer.encode(r, options: jpeg), try ImageEncoder.jpeg(image, quality: jpeg.jpegQuality), model)
        }
    }

    /// A cached style code gives the same picture as the style image it came from.
    func testCachedStyleCodeMatchesTheImage() throws {
        let content = try Stylizer.decode(try Shared.bytes("\(Shared.golden)/microast-cornell-matisse.content.png"), input: "c")
        let style = try Stylizer.decode(try Shared.bytes("\(Shared.golden)/microast-cornell-matisse.style0.png"), input: "s")
        let stylizer = Stylizer(network: try catalog.network(named: "microast"))
        let code = try stylizer.encodeStyle(style, maxSize: 512)
        let viaCode = try stylizer.stylize(content: content, styles: [.code(code)], options: StylizeOptions())
        let viaImage = try stylizer.stylize(content: content, styles: [.image(style)], options: StylizeOptions())
        XCTAssertEqual(viaCode.image.pixels, viaImage.image.pixels)
        // The code survives JSON, as a registered style's cache does.
        let decoded = try JSONDecoder().decode(StyleCode.self, from: try JSONEncoder().encode(code))
        XCTAssertEqual(decoded, code)
    }

    func testCancellationStopsBetweenLayers() throws {
        let content = try Stylizer.decode(try Shared.bytes("\(Shared.golden)/microast-cornell-matisse.content.png"), input: "c")
        let ctx = RunContext()
        var layers = 0
        ctx.onProgress = { _ in layers += 1 }
        ctx.isCanceled = { layers >= 3 }
        XCTAssertThrowsError(try Stylizer(network: catalog.network(named: "microast"))
            .stylize(content: content, styles: [.image(content)], options: StylizeOptions(), ctx: ctx)) { error in
            XCTAssertEqual(error as? PipelineError, .canceled)
        }
        XCTAssertEqual(layers, 3)
    }

    func testProgressRisesToOne() throws {
        let content = try Stylizer.decode(try Shared.bytes("\(Shared.golden)/cd16x-cornell-matisse.content.png"), input: "c")
        let ctx = RunContext()
        var seen: [Double] = []
        ctx.onProgress = { seen.append($0) }
        _ = try Stylizer(network: catalog.network(named: "adain-vgg19-cd16x")).stylize(content: content, styles: [.image(content)], options: StylizeOptions(), ctx: ctx)
        XCTAssertEqual(seen, seen.sorted())
        XCTAssertEqual(seen.last ?? 0, 1, accuracy: 1e-9)
    }

    func testBadParametersAreRejectedWithReasons() {
        var o = StylizeOptions()
        o.alpha = -0.1
        XCTAssertThrowsError(try o.validate(styleCount: 1)) { XCTAssertTrue(isBadParameter($0), "\($0)") }
        o = StylizeOptions()
        o.styleWeights = [1, 2]
        XCTAssertThrowsError(try o.validate(styleCount: 3)) { XCTAssertTrue("\($0)".contains("2 values for 3 styles")) }
        o.styleWeights = [0, 0, 0]
        XCTAssertThrowsError(try o.validate(styleCount: 3))
        XCTAssertThrowsError(try StylizeOptions().validate(styleCount: 0))
        XCTAssertThrowsError(try catalog.network(named: "no-such-model")) { XCTAssertTrue(isBadParameter($0), "\($0)") }
    }

    func testUndecodableInputsMapToTheRightStatus() {
        XCTAssertThrowsError(try Stylizer.decode(Array("GIF89a....".utf8), input: "style 2")) { e in
            if case .unsupportedImage = e as? PipelineError {} else { XCTFail("\(e)") }
            XCTAssertTrue("\(e)".hasPrefix("style 2:"))
        }
        XCTAssertThrowsError(try Stylizer.decode([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0], input: "content")) { e in
            if case .corruptImage = e as? PipelineError {} else { XCTFail("\(e)") }
        }
    }
}

final class ColorTransferTests: XCTestCase {
    /// After the transfer the style has the content's channel means and covariance.
    func testStyleTakesTheContentsColourStatistics() throws {
        let content = try Stylizer.decode(try Shared.bytes("\(Shared.images)/content/golden_gate.jpg"), input: "c").resized(toFit: 128)
        let style = try Stylizer.decode(try Shared.bytes("\(Shared.images)/style/mondrian_cropped.jpg"), input: "s").resized(toFit: 128)
        let out = ColorTransfer.matchColors(of: style, to: content)
        func stats(_ im: PlanarImage) -> ([Double], [Double]) {
            let n = im.planeSize
            let m = (0..<3).map { c in (0..<n).reduce(0.0) { $0 + Double(im.pixels[c * n + $1]) } / Double(n) }
            let cov = [(0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2)].map { (a, b) in
                (0..<n).reduce(0.0) { $0 + (Double(im.pixels[a * n + $1]) - m[a]) * (Double(im.pixels[b * n + $1]) - m[b]) } / Double(n - 1)
            }
            return (m, cov)
        }
        let (mc, cc) = stats(content), (mo, co) = stats(out), (ms, _) = stats(style)
        for c in 0..<3 { XCTAssertEqual(mo[c], mc[c], accuracy: 1e-3) }
        for i in 0..<6 { XCTAssertEqual(co[i], cc[i], accuracy: 1e-3) }
        XCTAssertGreaterThan(abs(ms[2] - mc[2]) + abs(ms[0] - mc[0]), 0.05, "test images should differ in colour to begin with")
    }
}

/// A bad request parameter: an invalid value or an unknown model (the service answers 400).
func isBadParameter(_ error: Error) -> Bool {
    switch error as? PipelineError {
    case .invalidParameter, .unknownModel: return true
    default: return false
    }
}
