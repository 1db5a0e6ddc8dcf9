import Foundation
import HTTPCore
import StylistService
import StylistTesting
import XCTest

/// Every 4xx of openapi.yaml as a client meets it, each with a problem+json body.
final class ErrorTests: ServiceTestCase {
    func testBadParametersAre400() throws {
        let server = try start()
        let c = try server.client()
        let content = try Golden.content(Golden.microast), style = try Golden.style(Golden.microast)
        let cases: [([(String, String)], String)] = [
            ([("model", "nope")], "Unknown model 'nope'"),
            ([("model", "../models/microast")], "Unknown model"),
            ([("alpha", "1.5")], "alpha"),
            ([("alpha", "strong")], "alpha"),
            ([("style_weights", "0.5,0.5")], "style_weights"),
            ([("style_weights", "a")], "style_weights"),
            ([("max_size", "8")], "max_size"),
            ([("max_size", "100000")], "max_size"),
            ([("format", "gif")], "format"),
            ([("preserve_color", "maybe")], "preserve_color"),
            ([("colour", "red")], "Unknown field 'colour'"),
            ([("alpha", "0.5"), ("alpha", "0.6")], "more than once"),
        ]
        for (fields, text) in cases {
            assertProblem(try c.post("/v1/jobs", form: jobForm(content: content, styles: [style], fields: fields)), 400, text)
        }
        assertProblem(try c.post("/v1/jobs", form: jobForm(content: content, styles: [])), 400, "style")
        var noContent = MultipartForm()
        noContent.file("style", style)
        assertProblem(try c.post("/v1/jobs", form: noContent), 400, "content")
        assertProblem(try c.post("/v1/jobs", form: jobForm(content: content, styles: [], styleIDs: ["unknown"])), 400, "style_id")
        // Too small once resized: 96x64 at max_size 16 is 16x11.
        assertProblem(try c.post("/v1/jobs", form: jobForm(content: content, styles: [style], fields: [("max_size", "16")])), 400, "at least 16")
        // A malformed multipart body.
        let bad = try c.request("POST", "/v1/jobs", headers: [("Content-Type", "multipart/form-data; boundary=xyz")],
                                body: Array("--xyz\r\nContent-Disposition: form-data; name=\"content\"\r\n\r\nabc".utf8))
        assertProblem(bad, 400)
        XCTAssertEqual(try c.get("/healthz").status, 200, "the connection stays usable after a 400")
    }

    /// Form fields and `?wait` read exactly as openapi.yaml's schemas say (schemathesis holds the
    /// server to them): numbers in JSON's spelling, weights as plain decimals, `name` counted in
    /// characters, no field the schema does not list.
    func testFieldsAreReadAsTheSchemaSpellsThem() throws {
        let server = try start()
        let c = try server.client()
        let content = try Golden.content(Golden.microast), style = try Golden.style(Golden.microast)
        let refused: [(String, String)] = [
            ("alpha", ".5"), ("alpha", "+0.5"), ("alpha", "0x1p-1"), ("alpha", "1.0000000000000002"), ("alpha", "nan"),
            ("style_weights", "1e-3"), ("style_weights", "+1"), ("style_weights", "1234567890"), ("style_weights", "inf"),
            ("style_weights", "0x1p3"), ("max_size", "+64"), ("max_size", "064"), ("max_size", "64.0"),
        ]
        for (name, value) in refused {
            assertProblem(try c.post("/v1/jobs", form: jobForm(content: content, styles: [style], fields: [(name, value)])), 400, name)
        }
        let accepted: [(String, String)] = [
            ("alpha", "1e-05"), ("alpha", " 0.5\n"), ("alpha", "-0"), ("style_weights", " .5 "), ("style_weights", "2."),
            ("max_size", "64"), ("preserve_color", "\u{2003}ON "), ("format", "JPG"),
        ]
        for (name, value) in accepted {
            XCTAssertEqual(try c.post("/v1/jobs", form: jobForm(content: content, styles: [style], fields: [(name, value)])).status, 202,
                           "\(name)=\(value)")
        }
        let id = try submit(c, jobForm(content: content, styles: [style]))
        for wait in ["+1", ".5", "0x1", "1e400"] { assertProblem(try c.get("/v1/jobs/\(id)?wait=\(wait)"), 400, "wait") }

        // A style's name: 200 characters (not bytes), counted before trimming; `style` is the only file field.
        func register(name: String, field: String = "style") throws -> ClientResponse {
            var form = MultipartForm()
            form.file(field, style, filename: "s.png", contentType: "image/png")
            form.field("name", name)
            return try c.post("/v1/styles", form: form)
        }
        XCTAssertEqual(try register(name: String(repeating: "é", count: 200)).status, 201)
        assertProblem(try register(name: String(repeating: "e", count: 201)), 400, "200 characters")
        assertProblem(try register(name: String(repeating: " ", count: 201)), 400, "200 characters")
        assertProblem(try register(name: "x", field: "image"), 400, "Unknown field 'image'")
    }

    func testNotFoundGoneMethodAndConflict() throws {
        let g = gate()
        let server = try start(hooks: g.holdAtFirstLayer) { $0.jobTTLSeconds = 1 }
        let c = try server.client()
        assertProblem(try c.get("/v1/jobs/AAAAAAAAAAAAAAAAAAAAAA"), 404)
        assertProblem(try c.get("/v1/jobs/AAAAAAAAAAAAAAAAAAAAAA/result"), 404)
        assertProblem(try c.get("/nothing/here"), 404)
        assertProblem(try c.get("/v1/styles/none"), 404)

        let r405 = try c.request("PATCH", "/v1/jobs/abc", body: [])
        assertProblem(r405, 405)
        XCTAssertEqual(r405.headers["Allow"], "GET, HEAD, DELETE")
        let post405 = try c.request("DELETE", "/v1/jobs")
        assertProblem(post405, 405)
        XCTAssertEqual(post405.headers["Allow"], "POST")

        let id = try submit(c, jobForm(content: try Golden.content(Golden.microast), styles: [try Golden.style(Golden.microast)]))
        XCTAssertTrue(g.waitForArrival(id))
        let notReady = try c.get("/v1/jobs/\(id)/result")
        assertProblem(notReady, 409, "not ready")
        XCTAssertEqual(notReady.json?["job_status"] as? String, "running")
        g.release()
        XCTAssertEqual(try waitFor(c, id)["status"] as? String, "succeeded")
        // job_ttl_seconds = 1: the finished job expires and its URLs answer 410.
        XCTAssertTrue(try TestServer.eventually(timeout: 30) { try c.get("/v1/jobs/\(id)").status == 410 })
        assertProblem(try c.get("/v1/jobs/\(id)"), 410, "expired")
        assertProblem(try c.get("/v1/jobs/\(id)/result"), 410)
        assertProblem(try c.get("/v1/jobs/\(id)/events"), 410)
        assertProblem(try c.delete("/v1/jobs/\(id)"), 410)
    }

    func testImagesAreCheckedFromTheirHeaders() throws {
        let server = try start { $0.maxMegapixels = 0.005 }   // 5000 pixels: 64x64 passes, 96x64 does not
        let c = try server.client()
        let small = try Golden.content("cd16x-sailboat-mondrian-a05")   // 64x64
        let big = try Golden.content(Golden.microast)                   // 96x64
        let style = try Golden.style(Golden.microast)                   // 64x64
        assertProblem(try c.post("/v1/jobs", form: jobForm(content: big, styles: [style])), 413, "pixels")
        assertProblem(try c.post("/v1/jobs", form: jobForm(content: Array("hello, not an image".utf8), styles: [style])), 415, "PNG or JPEG")
        assertProblem(try c.post("/v1/jobs", form: jobForm(content: small, styles: [Array("GIF89a......".utf8)])), 415, "style 1")
        // A PNG signature followed by garbage: the header cannot be read.
        let corrupt: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] + [UInt8](repeating: 0x42, count: 200)
        assertProblem(try c.post("/v1/jobs", form: jobForm(content: corrupt, styles: [style])), 422, "content")
        // A valid header with truncated pixel data is accepted, and the job fails with 422.
        let truncated = Array(small.prefix(small.count / 2))
        let id = try submit(c, jobForm(content: truncated, styles: [style]))
        let job = try waitFor(c, id)
        XCTAssertEqual(job["status"] as? String, "failed")
        XCTAssertEqual((job["error"] as? [String: Any])?["status"] as? Int, 422, "\(job)")
        assertProblem(try c.get("/v1/jobs/\(id)/result"), 409, "failed")
        // Not multipart at all.
        let json = try c.request("POST", "/v1/jobs", headers: [("Content-Type", "application/json")], body: Array("{}".utf8))
        assertProblem(json, 415, "multipart")
    }

    func testAPIKeys() throws {
        let server = try start { $0.apiKeys = ["s3cret", "other-key"] }
        let anonymous = try HTTPClient(port: server.port)
        let none = try anonymous.get("/v1/styles")
        assertProblem(none, 401)
        XCTAssertTrue(none.headers["WWW-Authenticate"]?.hasPrefix("Bearer") == true, none.description)
        let wrong = try anonymous.get("/v1/styles", headers: [("Authorization", "Bearer nope")])
        assertProblem(wrong, 401)
        XCTAssertTrue(wrong.headers["WWW-Authenticate"]?.contains("invalid_token") == true)
        assertProblem(try anonymous.get("/metrics"), 401)
        assertProblem(try anonymous.get("/no/such/path"), 401)
        // The upload is refused before its body is read.
        let form = jobForm(content: try Golden.content(Golden.microast), styles: [try Golden.style(Golden.microast)])
        let refused = try HTTPClient(port: server.port).postExpectingContinue("/v1/jobs", form: form)
        XCTAssertNil(refused.interim)
        assertProblem(refused.response, 401)
        // Health endpoints stay open.
        XCTAssertEqual(try anonymous.get("/healthz").status, 200)
        XCTAssertEqual(try anonymous.get("/readyz").status, 200)
        // The right key works.
        let c = try server.client()
        XCTAssertEqual(try c.get("/v1/styles").status, 200)
        let ok = try anonymous.get("/v1/styles", headers: [("Authorization", "Bearer other-key")])
        XCTAssertEqual(ok.status, 200)
        let id = try submit(c, form)
        XCTAssertEqual(try waitFor(c, id)["status"] as? String, "succeeded")
    }

    /// With API keys, jobs and styles belong to the key that created them: another key gets 404
    /// for them (as if they did not exist) and does not see them in lists.
    func testJobsAndStylesAreScopedToTheirAPIKey() throws {
        let server = try start { $0.apiKeys = ["alice-key", "bob-key"] }
        let alice = try HTTPClient(port: server.port)
        alice.defaultHeaders = [("Authorization", "Bearer alice-key")]
        let bob = try HTTPClient(port: server.port)
        bob.defaultHeaders = [("Authorization", "Bearer bob-key")]
        let id = try submit(alice, jobForm(content: try Golden.content(Golden.microast), styles: [try Golden.style(Golden.microast)]))
        XCTAssertEqual(try waitFor(alice, id)["status"] as? String, "succeeded")
        for path in ["/v1/jobs/\(id)", "/v1/jobs/\(id)?wait=1", "/v1/jobs/\(id)/result", "/v1/jobs/\(id)/events"] {
            assertProblem(try bob.get(path), 404)
        }
        assertProblem(try bob.delete("/v1/jobs/\(id)"), 404)
        XCTAssertEqual(try alice.get("/v1/jobs/\(id)/result").status, 200, "bob's delete must not have removed it")

        var styleForm = MultipartForm()
        styleForm.file("style", try Golden.style(Golden.microast), contentType: "image/png")
        let style = try XCTUnwrap(try alice.post("/v1/styles", form: styleForm).json?["id"] as? String)
        assertProblem(try bob.get("/v1/styles/\(style)"), 404)
        assertProblem(try bob.delete("/v1/styles/\(style)"), 404)
        XCTAssertEqual((try bob.get("/v1/styles").json?["styles"] as? [Any])?.count, 0)
        XCTAssertEqual((try alice.get("/v1/styles").json?["styles"] as? [Any])?.count, 1)
        assertProblem(try bob.post("/v1/jobs", form: jobForm(content: try Golden.content(Golden.microast), styles: [], styleIDs: [style])),
                      400, "Unknown style_id")
        XCTAssertEqual(try alice.post("/v1/jobs", form: jobForm(content: try Golden.content(Golden.microast), styles: [], styleIDs: [style])).status, 202)
    }

    func testQueueFullIs429WithRetryAfter() throws {
        let g = gate()
        let server = try start(hooks: g.holdAtFirstLayer) { $0.queueSize = 1 }
        let c = try server.client()
        let form = jobForm(content: try Golden.content(Golden.microast), styles: [try Golden.style(Golden.microast)])
        let running = try submit(c, form)
        XCTAssertTrue(g.waitForArrival(running))
        let queued = try submit(c, form)
        let full = try c.post("/v1/jobs", form: form)
        assertProblem(full, 429, "queue")
        XCTAssertGreaterThanOrEqual(Int(full.headers["Retry-After"] ?? "") ?? 0, 1, full.description)
        let ready = try c.get("/readyz")
        assertProblem(ready, 503, "queue is full")
        XCTAssertEqual((ready.json?["checks"] as? [String: Any])?["queue_not_full"] as? Bool, false)
        XCTAssertEqual(try c.get("/healthz").status, 200)
        g.release()
        XCTAssertEqual(try waitFor(c, queued)["status"] as? String, "succeeded")
        XCTAssertEqual(try c.get("/readyz").status, 200)
        _ = try submit(c, form)
    }
}
