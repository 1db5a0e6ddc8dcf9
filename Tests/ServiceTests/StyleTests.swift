import Foundation
import ImageCodecs
import StylistService
import StylistTesting
import XCTest

/// Registered styles: register once, use by id, the encoder statistics are cached.
final class StyleTests: ServiceTestCase {
    func testRegisterAndUseAStyleByID() throws {
        let server = try start()
        let c = try server.client()
        let content = try Golden.content(Golden.microast), style = try Golden.style(Golden.microast)

        var form = MultipartForm()
        form.file("style", style, filename: "matisse.png", contentType: "image/png")
        form.field("name", "Matisse")
        let created = try c.post("/v1/styles", form: form)
        XCTAssertEqual(created.status, 201, created.description)
        let sid = try XCTUnwrap(created.json?["id"] as? String)
        XCTAssertEqual(created.headers["Location"], "/v1/styles/\(sid)")
        XCTAssertEqual(created.json?["name"] as? String, "Matisse")
        XCTAssertEqual(created.json?["width"] as? Int, 64)
        XCTAssertEqual(created.json?["content_type"] as? String, "image/png")
        XCTAssertEqual(created.json?["cached_codes"] as? [String], [])

        let list = try c.get("/v1/styles")
        XCTAssertEqual(list.status, 200)
        XCTAssertEqual((list.json?["styles"] as? [[String: Any]])?.compactMap { $0["id"] as? String }, [sid])
        XCTAssertEqual(try c.get("/v1/styles/\(sid)").json?["name"] as? String, "Matisse")

        // A job with the registered style gives exactly the pixels of the same job with the image uploaded.
        let byID = try submit(c, jobForm(content: content, styles: [], styleIDs: [sid]))
        XCTAssertEqual(try waitFor(c, byID)["status"] as? String, "succeeded")
        let direct = try directResult(model: "microast", content: content, styles: [style])
        assertSamePixels(try ImageDecoder.decode(try c.get("/v1/jobs/\(byID)/result").body), direct, "style_id job")
        XCTAssertEqual(try c.get("/v1/styles/\(sid)").json?["cached_codes"] as? [String], ["microast@512"])

        // The second job uses the cached code (a cache hit, no style encoder run) and still matches.
        let again = try submit(c, jobForm(content: content, styles: [], styleIDs: [sid]))
        let job = try waitFor(c, again)
        XCTAssertEqual(job["status"] as? String, "succeeded")
        let styles = (job["parameters"] as? [String: Any])?["styles"] as? [[String: Any]]
        XCTAssertEqual(styles?.first?["style_id"] as? String, sid)
        assertSamePixels(try ImageDecoder.decode(try c.get("/v1/jobs/\(again)/result").body), direct, "cached code job")
        let metrics = try c.get("/metrics").text
        XCTAssertTrue(metrics.contains("stylist_style_code_cache_total{result=\"hit\"} 1"), metrics)
        XCTAssertTrue(metrics.contains("stylist_style_code_cache_total{result=\"miss\"} 1"), metrics)

        // Mixed with an uploaded style, with weights, and with preserve_color (which uses the image).
        let mixed = try submit(c, jobForm(content: content, styles: [try Golden.style("microast-goldengate-mix", 1)], styleIDs: [sid],
                                          fields: [("style_weights", "1,3"), ("preserve_color", "true")]))
        XCTAssertEqual(try waitFor(c, mixed)["status"] as? String, "succeeded")

        // Delete: 204, then 404, and jobs can no longer name it.
        XCTAssertEqual(try c.delete("/v1/styles/\(sid)").status, 204)
        assertProblem(try c.get("/v1/styles/\(sid)"), 404)
        assertProblem(try c.delete("/v1/styles/\(sid)"), 404)
        assertProblem(try c.post("/v1/jobs", form: jobForm(content: content, styles: [], styleIDs: [sid])), 400, "style_id")
    }

    func testStyleRegistrationErrors() throws {
        let server = try start()
        let c = try server.client()
        var notImage = MultipartForm()
        notImage.file("style", Array("plain text".utf8))
        assertProblem(try c.post("/v1/styles", form: notImage), 415)
        var missing = MultipartForm()
        missing.field("name", "nothing")
        assertProblem(try c.post("/v1/styles", form: missing), 400, "style")
        var extra = MultipartForm()
        extra.file("style", try Golden.style(Golden.microast))
        extra.field("colour", "x")
        assertProblem(try c.post("/v1/styles", form: extra), 400, "colour")
        // Registered styles survive a restart.
        var ok = MultipartForm()
        ok.file("style", try Golden.style(Golden.microast))
        let sid = try XCTUnwrap(try c.post("/v1/styles", form: ok).json?["id"] as? String)
        try server.restart()
        XCTAssertEqual(try server.client().get("/v1/styles/\(sid)").status, 200)
    }
}
