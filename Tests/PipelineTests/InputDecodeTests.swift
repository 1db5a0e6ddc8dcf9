import Foundation
import ImageCodecs
import Models
import StylePipeline
import XCTest

/// How a job's inputs are decoded (each once, side by side, straight to max_size) and what the
/// pipeline reports about its stages.
final class InputDecodeTests: XCTestCase {
    let catalog = ModelCatalog(directory: Shared.models)

    /// The shared content photo enlarged to `width` x `height` and saved as a JPEG.
    private func largeJPEG(width: Int, height: Int) throws -> [UInt8] {
        let photo = try Stylizer.decode(try Shared.bytes("\(Shared.images)/content/golden_gate.jpg"), input: "content")
        return try ImageEncoder.jpeg(photo.resized(width: width, height: height), quality: 95)
    }

    private func meanLevels(_ a: PlanarImage, _ b: PlanarImage) -> Float {
        zip(a.pixels, b.pixels).map { abs($0 - $1) * 255 }.reduce(0, +) / Float(a.pixels.count)
    }

    func testALargeJPEGGivesTheSameSizeResultAsAFullDecode() throws {
        let jpeg = try largeJPEG(width: 1400, height: 1000)
        let style = try Stylizer.decode(try Shared.bytes("\(Shared.images)/style/sketch.png"), input: "style")
        var options = StylizeOptions()
        options.maxSize = 256
        let fast = try Stylizer.decode(jpeg, input: "content", fittingTo: options.maxSize)
        let full = try Stylizer.decode(jpeg, input: "content")
        XCTAssertEqual([fast.width, fast.height], [256, 183])
        XCTAssertLessThan(meanLevels(fast, Stylizer.fit(full, maxSize: 256)), 1.0)

        let stylizer = Stylizer(network: try catalog.network(named: "microast"))
        let a = try stylizer.stylize(content: fast, styles: [.image(style)], options: options)
        let b = try stylizer.stylize(content: full, styles: [.image(style)], options: options)
        XCTAssertEqual([a.image.width, a.image.height], [b.image.width, b.image.height])
        XCTAssertLessThan(meanLevels(a.image, b.image), 3.0)
    }

    func testDecodeAllKeepsTheOrderAndNamesTheFirstBadInput() throws {
        let good = try largeJPEG(width: 600, height: 400)
        let png = try ImageEncoder.png(PlanarImage(width: 40, height: 30, fill: (0.1, 0.2, 0.3)))
        let images = try Stylizer.decodeAll([(good, "content"), (png, "style 1")], fittingTo: 300)
        XCTAssertEqual(images.map { [$0.width, $0.height] }, [[300, 200], [40, 30]])

        let gif = Array("GIF89a....".utf8)
        XCTAssertThrowsError(try Stylizer.decodeAll([(good, "content"), (gif, "style 1"), (Array(good.prefix(500)), "style 2")],
                                                    fittingTo: 300)) { error in
            XCTAssertTrue("\(error)".hasPrefix("style 1:"), "\(error)")
        }
    }

    func testTheResultNamesEveryStageThatRan() throws {
        let content = PlanarImage(width: 300, height: 200, fill: (0.4, 0.5, 0.6))
        let style = PlanarImage(width: 64, height: 64, fill: (0.9, 0.1, 0.2))
        var options = StylizeOptions()
        options.maxSize = 128
        options.preserveColor = true
        let r = try Stylizer(network: try catalog.network(named: "microast")).stylize(content: content, styles: [.image(style)], options: options)
        XCTAssertEqual(r.stages.stages.map(\.name), ["resize", "color", "prepare", "style_encode", "network"])
        XCTAssertEqual(r.inferenceSeconds, r.stages["style_encode"] + r.stages["network"], accuracy: 1e-9)
        XCTAssertGreaterThan(r.stages["network"], 0)

        options.maxSize = 512
        options.preserveColor = false
        let unresized = try Stylizer(network: try catalog.network(named: "microast")).stylize(content: content, styles: [.image(style)], options: options)
        XCTAssertFalse(unresized.stages.stages.map(\.name).contains("resize"))
    }
}
