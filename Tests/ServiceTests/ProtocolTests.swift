import Foundation
import HTTPCore
import ImageCodecs
import StylistService
import StylistTesting
import XCTest

/// HTTP/1.1 behaviour through the whole service: keep-alive, pipelining, chunked uploads,
/// 100-continue, limits.
final class ProtocolTests: ServiceTestCase {
    func testKeepAliveServesSeveralRequestsOnOneConnection() throws {
        let server = try start()
        let c = try server.client()
        let id = try submit(c, jobForm(content: try Golden.content(Golden.microast), styles: [try Golden.style(Golden.microast)]))
        XCTAssertEqual(try waitFor(c, id)["status"] as? String, "succeeded")
        for _ in 0..<5 {
            XCTAssertEqual(try c.get("/v1/jobs/\(id)").status, 200)
            XCTAssertEqual(try c.get("/v1/jobs/\(id)/result").status, 200)
            XCTAssertEqual(try c.get("/healthz").status, 200)
        }
        let r = try c.get("/v1/jobs/\(id)")
        XCTAssertNil(r.headers["Connection"], "keep-alive answers do not close")
        XCTAssertNotNil(r.headers["Date"])
        let closing = try c.get("/healthz", headers: [("Connection", "close")])
        XCTAssertEqual(closing.status, 200)
        XCTAssertEqual(closing.headers["Connection"], "close")
        XCTAssertTrue(c.isClosedByPeer())
    }

    func testPipelinedRequestsAreAnsweredInOrder() throws {
        let server = try start()
        let c = try server.client()
        let id = try submit(c, jobForm(content: try Golden.content(Golden.microast), styles: [try Golden.style(Golden.microast)]))
        XCTAssertEqual(try waitFor(c, id)["status"] as? String, "succeeded")
        // Send everything at once, then read the answers.
        var batch: [UInt8] = []
        batch += c.encode("GET", "/v1/jobs/\(id)")
        batch += c.encode("GET", "/nope")
        batch += c.encode("HEAD", "/v1/jobs/\(id)/result")
        batch += c.encode("GET", "/healthz")
        batch += c.encode("GET", "/v1/jobs/\(id)?wait=1")
        try c.send(batch)
        let a = try c.readResponse()
        XCTAssertEqual(a.status, 200)
        XCTAssertEqual(a.json?["id"] as? String, id)
        assertProblem(try c.readResponse(), 404)
        let head = try c.readResponse(forHEAD: true)
        XCTAssertEqual(head.status, 200)
        XCTAssertEqual(head.headers["Content-Type"], "image/png")
        XCTAssertEqual(try c.readResponse().json?["status"] as? String, "ok")
        XCTAssertEqual(try c.readResponse().json?["id"] as? String, id)
    }

    func testChunkedUploadOfAJob() throws {
        let server = try start()
        let c = try server.client()
        let content = try Golden.content(Golden.microast), style = try Golden.style(Golden.microast)
        let r = try c.postChunked("/v1/jobs", form: jobForm(content: content, styles: [style]), chunkSize: 1000)
        XCTAssertEqual(r.status, 202, r.description)
        let id = try XCTUnwrap(r.json?["id"] as? String)
        XCTAssertEqual(try waitFor(c, id)["status"] as? String, "succeeded")
        let direct = try directResult(model: "microast", content: content, styles: [style])
        assertSamePixels(try ImageDecoder.decode(try c.get("/v1/jobs/\(id)/result").body), direct, "chunked upload")
    }

    /// curl sends `Expect: 100-continue` above 1 KiB and waits a second for it: it must come at once.
    /// Also a 2 MB upload, spooled to disk and moved (not copied) into the job's directory.
    func testExpectContinueIsAnsweredAtOnce() throws {
        let server = try start { $0.http.bodyMemoryThreshold = 64 * 1024 }
        let c = try server.client()
        let content = try Golden.content(Golden.microast), style = try Golden.style(Golden.microast)
        // Pad the content PNG past 2 MB with a trailing chunk after IEND (decoders stop at IEND).
        let padded = content + [UInt8](repeating: 0, count: 2_000_000)
        let (interim, response, seconds) = try c.postExpectingContinue("/v1/jobs", form: jobForm(content: padded, styles: [style]))
        XCTAssertEqual(interim, 100)
        XCTAssertLessThan(seconds, 0.9, "100 Continue took \(seconds) s")
        XCTAssertEqual(response.status, 202, response.description)
        let id = try XCTUnwrap(response.json?["id"] as? String)
        XCTAssertEqual(try waitFor(c, id)["status"] as? String, "succeeded")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: server.dataDirectory.appendingPathComponent("tmp").path), [],
                       "upload spool files are gone")
    }

    func testLimits431And413And408() throws {
        let server = try start {
            $0.http.maxHeaderBytes = 2048
            $0.http.maxBodyBytes = 64 * 1024
            $0.http.bodyTimeoutSeconds = 1
        }
        // 431: headers over the limit.
        let c1 = try server.client()
        let big = try c1.request("GET", "/healthz", headers: [("X-Filler", String(repeating: "a", count: 4096))])
        assertProblem(big, 431)
        // 413: a declared body over the limit is refused before it is sent.
        let c2 = try server.client()
        let form = jobForm(content: [UInt8](repeating: 1, count: 100 * 1024), styles: [try Golden.style(Golden.microast)])
        let tooBig = try c2.postExpectingContinue("/v1/jobs", form: form)
        XCTAssertNil(tooBig.interim)
        assertProblem(tooBig.response, 413)
        // 413: a chunked body that grows past the limit.
        let c3 = try server.client()
        assertProblem(try c3.postChunked("/v1/jobs", form: form, chunkSize: 16 * 1024), 413)
        // 408: a body that stalls.
        let c4 = try server.client()
        try c4.send("POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: 1000\r\n\r\n--b\r\n")
        let stalled = try c4.readResponse()
        assertProblem(stalled, 408)
        XCTAssertTrue(c4.isClosedByPeer())
        // 411: a POST without a length.
        let c5 = try server.client()
        try c5.send("POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n\r\n")
        assertProblem(try c5.readResponse(), 411)
        // The server is fine.
        XCTAssertEqual(try server.client().get("/healthz").status, 200)
    }
}
