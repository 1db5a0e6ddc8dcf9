import Foundation
import HTTPCore
import ImageCodecs
import StylePipeline
import StylistService
import StylistTesting
import XCTest

/// Spatial control over HTTP: a `mask` part with exactly two styles.
final class MaskJobTests: ServiceTestCase {
    static var dir: String { TestPaths.shared.appendingPathComponent("golden-mask").path }
    func file(_ name: String, _ suffix: String) throws -> [UInt8] { try TestPaths.bytes("\(Self.dir)/\(name).\(suffix).png") }

    func maskForm(_ name: String, styles: [[UInt8]]? = nil, styleIDs: [String] = [], mask: [UInt8]? = nil,
                  fields: [(String, String)] = []) throws -> MultipartForm {
        var form = jobForm(content: try file(name, "content"), styles: try styles ?? [try file(name, "style0"), try file(name, "style1")],
                           styleIDs: styleIDs, fields: fields)
        form.file("mask", try mask ?? file(name, "mask"), filename: "mask.png", contentType: "image/png")
        return form
    }

    /// Both golden mask cases through the API: the result PNG is within 2 levels of the reference's,
    /// and the job says it has a mask.
    func testGoldenMaskCasesThroughTheAPI() throws {
        let server = try start()
        let c = try server.client()
        for (name, model, alpha) in [("microast-cornell-mask", "microast", "1.0"), ("cd16x-goldengate-mask-a07", "adain-vgg19-cd16x", "0.7")] {
            let id = try submit(c, try maskForm(name, fields: [("model", model), ("alpha", alpha)]))
            let job = try waitFor(c, id)
            XCTAssertEqual(job["status"] as? String, "succeeded", "\(job)")
            XCTAssertEqual((job["parameters"] as? [String: Any])?["mask"] as? Bool, true)
            let result = try c.get("/v1/jobs/\(id)/result")
            XCTAssertEqual(result.status, 200)
            let ours = try ImageDecoder.decode(result.body)
            let expected = try ImageDecoder.decode(try file(name, "expected"))
            XCTAssertEqual(ours.width, expected.width, name)
            XCTAssertEqual(ours.height, expected.height, name)
            let worst = zip(ours.pixels, expected.pixels).map { abs($0 - $1) * 255 }.max() ?? 99
            XCTAssertLessThanOrEqual(worst, 2.01, "\(name): \(worst) levels from the reference")
        }
        // A job without a mask says so.
        let plain = try submit(c, jobForm(content: try Golden.content(Golden.microast), styles: [try Golden.style(Golden.microast)]))
        XCTAssertEqual((try waitFor(c, plain)["parameters"] as? [String: Any])?["mask"] as? Bool, false)
    }

    /// Registered styles work as the two styles, with the same pixels as the uploads.
    func testMaskWithRegisteredStyles() throws {
        let server = try start()
        let c = try server.client()
        let name = "microast-cornell-mask"
        var ids: [String] = []
        for i in 0..<2 {
            var form = MultipartForm()
            form.file("style", try file(name, "style\(i)"), filename: "s.png", contentType: "image/png")
            let r = try c.post("/v1/styles", form: form)
            XCTAssertEqual(r.status, 201, r.description)
            ids.append(try XCTUnwrap(r.json?["id"] as? String))
        }
        let viaIDs = try submit(c, try maskForm(name, styles: [], styleIDs: ids))
        let viaUploads = try submit(c, try maskForm(name))
        XCTAssertEqual(try waitFor(c, viaIDs)["status"] as? String, "succeeded")
        XCTAssertEqual(try waitFor(c, viaUploads)["status"] as? String, "succeeded")
        let a = try ImageDecoder.decode(try c.get("/v1/jobs/\(viaIDs)/result").body)
        let b = try ImageDecoder.decode(try c.get("/v1/jobs/\(viaUploads)/result").body)
        assertSamePixels(a, b, "style_id and upload")
    }

    /// A mask with other than two styles, with style_weights, twice, or not an image: a problem before any job.
    func testMaskErrors() throws {
        let server = try start()
        let c = try server.client()
        let name = "microast-cornell-mask"
        let s0 = try file(name, "style0")
        assertProblem(try c.post("/v1/jobs", form: try maskForm(name, styles: [s0])), 400, "exactly two styles")
        assertProblem(try c.post("/v1/jobs", form: try maskForm(name, styles: [s0, s0, s0])), 400, "exactly two styles")
        assertProblem(try c.post("/v1/jobs", form: try maskForm(name, fields: [("style_weights", "0.5,0.5")])), 400, "style_weights")
        assertProblem(try c.post("/v1/jobs", form: try maskForm(name, mask: Array("not an image".utf8))), 415, "mask")
        assertProblem(try c.post("/v1/jobs", form: try maskForm(name, mask: [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0, 0])), 422, "mask")
        var twice = try maskForm(name)
        twice.file("mask", try file(name, "mask"), filename: "m2.png", contentType: "image/png")
        assertProblem(try c.post("/v1/jobs", form: twice), 400, "mask")
    }

    /// The mask is part of the idempotency digest: the same key with another mask is 422, with the same one a replay.
    func testMaskIsInTheIdempotencyDigest() throws {
        let server = try start()
        let c = try server.client()
        let name = "microast-cornell-mask"
        let key = [("Idempotency-Key", "mask-\(getpid())")]
        let first = try c.post("/v1/jobs", form: try maskForm(name), headers: key)
        XCTAssertEqual(first.status, 202, first.description)
        let again = try c.post("/v1/jobs", form: try maskForm(name), headers: key)
        XCTAssertEqual(again.status, 202, again.description)
        XCTAssertEqual(again.headers["Idempotency-Replayed"], "true")
        XCTAssertEqual(again.json?["id"] as? String, first.json?["id"] as? String)
        var inverted = try ImageDecoder.decode(try file(name, "mask"))
        inverted.pixels = inverted.pixels.map { 1 - $0 }
        let other = try c.post("/v1/jobs", form: try maskForm(name, mask: try ImageEncoder.png(inverted)), headers: key)
        assertProblem(other, 422, "Idempotency-Key")
    }
}
