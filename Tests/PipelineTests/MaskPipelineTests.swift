import Engine
import Foundation
import ImageCodecs
import Models
import StylePipeline
import XCTest

/// Spatial control through the pipeline (README.md, "Spatial control"): mask decoding, luminance, pixel-centre sampling,
/// threshold, padding, and the two golden mask cases from their PNGs.
final class MaskPipelineTests: XCTestCase {
    let catalog = ModelCatalog(directory: Shared.models)
    static var goldenMask: String { Shared.shared + "/golden-mask" }
    static let cases = ["microast-cornell-mask", "cd16x-goldengate-mask-a07"]

    func image(_ name: String, _ suffix: String) throws -> PlanarImage {
        try Stylizer.decode(try Shared.bytes("\(Self.goldenMask)/\(name).\(suffix).png"), input: suffix)
    }

    func worstLevels(_ a: PlanarImage, _ b: PlanarImage) -> Float {
        XCTAssertEqual(a.width, b.width)
        XCTAssertEqual(a.height, b.height)
        return zip(a.pixels, b.pixels).map { abs($0 - $1) * 255 }.max() ?? .infinity
    }

    func stylize(_ name: String, mask maskImage: PlanarImage?, styles: [PlanarImage]? = nil, alpha: Float? = nil) throws -> PlanarImage {
        let meta = try SafeTensors(contentsOf: "\(Self.goldenMask)/\(name).safetensors").metadata
        var options = StylizeOptions()
        options.alpha = alpha ?? Float(meta["alpha"]!)!
        let styleImages = try styles ?? [try image(name, "style0"), try image(name, "style1")]
        let result = try Stylizer(network: catalog.network(named: meta["model"]!))
            .stylize(content: try image(name, "content"), styles: styleImages.map { .image($0) },
                     mask: maskImage.map(Stylizer.regionMask), options: options)
        return try ImageDecoder.decode(try Stylizer.encode(result, options: options))
    }

    /// Each golden mask case's PNGs (content, two styles, mask) through the pipeline: within 2 levels.
    func testGoldenMaskPNGsEndToEnd() throws {
        for name in Self.cases {
            let ours = try stylize(name, mask: try image(name, "mask"))
            let expected = try ImageDecoder.decode(try Shared.bytes("\(Self.goldenMask)/\(name).expected.png"))
            let worst = worstLevels(ours, expected)
            XCTAssertLessThanOrEqual(worst, 2.01, "\(name): worst channel difference \(worst) levels")
        }
    }

    /// The decoded mask PNG gives exactly the golden case's mask tensor.
    func testMaskPNGBecomesTheReferenceMask() throws {
        for name in Self.cases {
            let st = try SafeTensors(contentsOf: "\(Self.goldenMask)/\(name).safetensors")
            let png = try image(name, "mask")
            let mask = Stylizer.regionMask(png)
            XCTAssertEqual(Stylizer.fitMask(mask, height: png.height, width: png.width), mask)
            XCTAssertEqual(mask.values, try st.floats("mask").map { $0 > 0.5 ? 1 : 0 }, name)
        }
    }

    /// All white: the first style alone; all black: the second alone (pixel for pixel after encoding,
    /// up to one level of float rounding).
    func testUniformMasksGiveTheSingleStyleResults() throws {
        for name in Self.cases {
            let content = try image(name, "content")
            let styles = [try image(name, "style0"), try image(name, "style1")]
            for (fill, style) in [(Float(1), styles[0]), (Float(0), styles[1])] {
                let mask = PlanarImage(width: 40, height: 30, fill: (fill, fill, fill))
                let masked = try stylize(name, mask: mask)
                let meta = try SafeTensors(contentsOf: "\(Self.goldenMask)/\(name).safetensors").metadata
                var options = StylizeOptions()
                options.alpha = Float(meta["alpha"]!)!
                let single = try Stylizer(network: catalog.network(named: meta["model"]!))
                    .stylize(content: content, styles: [.image(style)], options: options)
                let decoded = try ImageDecoder.decode(try Stylizer.encode(single, options: options))
                XCTAssertLessThanOrEqual(worstLevels(masked, decoded), 1.01, "\(name) fill \(fill)")
            }
        }
    }

    /// A mask at another size and in colour: the golden mask scaled up 3x (by repetition) and painted
    /// in colours whose luminance is on either side of 0.5 gives the golden result.
    func testMaskOfAnotherSizeAndColourIsSampledAndThresholded() throws {
        let name = "microast-cornell-mask"
        let png = try image(name, "mask")
        let w = png.width * 3, h = png.height * 3, n = w * h
        var px = [Float](repeating: 0, count: 3 * n)
        for y in 0..<h {
            for x in 0..<w {
                let white = png.pixel(x: x / 3, y: y / 3).r > 0.5
                // Yellow-ish (luminance ~0.55) against saturated blue-red (~0.45).
                let (r, g, b): (Float, Float, Float) = white ? (0.2, 0.8, 0.05) : (0.9, 0.3, 0.4)
                px[y * w + x] = r; px[n + y * w + x] = g; px[2 * n + y * w + x] = b
            }
        }
        XCTAssertGreaterThan(0.299 * 0.2 + 0.587 * 0.8 + 0.114 * 0.05, 0.5)
        XCTAssertLessThan(0.299 * 0.9 + 0.587 * 0.3 + 0.114 * 0.4, 0.5)
        let ours = try stylize(name, mask: PlanarImage(width: w, height: h, pixels: px))
        let expected = try ImageDecoder.decode(try Shared.bytes("\(Self.goldenMask)/\(name).expected.png"))
        XCTAssertLessThanOrEqual(worstLevels(ours, expected), 2.01)
    }

    /// The mask follows the content through the max_size downscale and the reflection padding.
    func testMaskFollowsResizeAndPadding() throws {
        // 10x6 content -> padded to 12x8 (microast): the mask is sampled at the content's size, then reflected.
        let mask = PlanarImage(width: 5, height: 3, pixels: (0..<45).map { i in Float((i % 15) % 4 == 0 ? 1 : 0) })
        let m = Stylizer.fitMask(Stylizer.regionMask(mask), height: 6, width: 10, padToHeight: 8, width: 12)
        XCTAssertEqual(m.height, 8); XCTAssertEqual(m.width, 12)
        for y in 0..<8 {
            for x in 0..<12 {
                let sy = reflect(y, 6), sx = reflect(x, 10)
                let src = (sy * 3 / 6) * 5 + sx * 5 / 10
                XCTAssertEqual(m.values[y * 12 + x], (src % 4 == 0) ? 1 : 0, "(\(y), \(x))")
            }
        }
        // A real job at a max_size that needs both: output at the resized content's size.
        let content = try Stylizer.decode(try Shared.bytes("\(Shared.images)/content/cornell.jpg"), input: "c")
        let style0 = try Stylizer.decode(try Shared.bytes("\(Shared.images)/style/sketch.png"), input: "s")
        let style1 = try Stylizer.decode(try Shared.bytes("\(Shared.images)/style/mondrian_cropped.jpg"), input: "s")
        let maskImage = try Stylizer.decodeMask(try Shared.bytes("\(Shared.images)/mask.png"))
        var options = StylizeOptions()
        options.maxSize = 101
        for model in ["microast", "adain-vgg19-cd16x"] {
            let r = try Stylizer(network: catalog.network(named: model))
                .stylize(content: content, styles: [.image(style0), .image(style1)], mask: maskImage, options: options)
            XCTAssertEqual(max(r.image.width, r.image.height), 101, model)
        }
    }

    func testMaskNeedsTwoStylesAndNoWeights() throws {
        let c = try image("microast-cornell-mask", "content")
        let mask = Stylizer.regionMask(try image("microast-cornell-mask", "mask"))
        let stylizer = Stylizer(network: try catalog.network(named: "microast"))
        XCTAssertThrowsError(try stylizer.stylize(content: c, styles: [.image(c)], mask: mask, options: StylizeOptions())) {
            XCTAssertTrue(isBadParameter($0), "\($0)")
            XCTAssertTrue("\($0)".contains("exactly two styles"), "\($0)")
        }
        XCTAssertThrowsError(try stylizer.stylize(content: c, styles: [.image(c), .image(c), .image(c)], mask: mask, options: StylizeOptions()))
        var o = StylizeOptions()
        o.styleWeights = [0.5, 0.5]
        XCTAssertThrowsError(try stylizer.stylize(content: c, styles: [.image(c), .image(c)], mask: mask, options: o)) {
            XCTAssertTrue("\($0)".contains("style_weights"), "\($0)")
        }
    }
}
