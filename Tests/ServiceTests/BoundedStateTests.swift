import Foundation
import StylistService
import StylistTesting
import XCTest

/// Hostile clients cannot grow the server's state without bound (issue 10, "bounded state").
final class BoundedStateTests: ServiceTestCase {
    /// 3,000 requests with distinct invented methods: `/metrics` keeps one `other` series per
    /// route and status instead of one per method.
    func testInventedMethodsDoNotGrowTheMetrics() throws {
        let server = try start()
        let c = try server.client()
        func junk(_ range: Range<Int>) throws {
            for i in range {
                let r = try c.request("JUNK\(i)", i % 2 == 0 ? "/healthz" : "/no/such/route")
                XCTAssertTrue([404, 405, 501].contains(r.status), "JUNK\(i): \(r.status)")
            }
        }
        _ = try c.get("/metrics")   // its own series exists from here on
        try junk(0..<100)
        let after100Text = try c.get("/metrics").text
        let after100 = after100Text.utf8.count
        try junk(100..<3000)
        let text = try c.get("/metrics").text
        // Only counter digits may grow between the two readings.
        XCTAssertLessThan(text.utf8.count, after100 + 200, "metrics grew with invented methods:\n\(after100Text)\n---\n\(text)")
        XCTAssertFalse(text.contains("JUNK"), "an invented method became a label value")
        XCTAssertTrue(text.contains("method=\"other\""), text)
    }

    /// The style library is capped by count and by bytes: beyond either, 409 with a clear problem;
    /// deleting a style makes room again.
    func testStyleLibraryIsCapped() throws {
        let server = try start { $0.maxStyles = 3 }
        let c = try server.client()
        func register() throws -> ClientResponse {
            var f = MultipartForm()
            f.file("style", try Golden.style(Golden.microast), contentType: "image/png")
            return try c.post("/v1/styles", form: f)
        }
        var ids: [String] = []
        for _ in 0..<3 {
            let r = try register()
            XCTAssertEqual(r.status, 201, r.description)
            ids.append(try XCTUnwrap(r.json?["id"] as? String))
        }
        assertProblem(try register(), 409, "max_styles")
        XCTAssertEqual(try c.delete("/v1/styles/\(ids[0])").status, 204)
        XCTAssertEqual(try register().status, 201)

        let style = try Golden.style(Golden.microast)
        let bytesServer = try start { $0.maxStyleBytes = 1 << 20 }
        let b = try bytesServer.client()
        var f = MultipartForm()
        f.file("style", style, contentType: "image/png")
        let fit = (1 << 20) / style.count
        for _ in 0..<fit { XCTAssertEqual(try b.post("/v1/styles", form: f).status, 201) }
        assertProblem(try b.post("/v1/styles", form: f), 409, "max_style_bytes")
    }
}
