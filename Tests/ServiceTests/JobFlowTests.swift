import Foundation
import HTTPCore
import ImageCodecs
import Jobs
import StylePipeline
import StylistService
import StylistTesting
import XCTest

/// The curl session of the README, over real sockets.
final class JobFlowTests: ServiceTestCase {
    /// POST -> 202 + Location, ?wait -> succeeded, result PNG pixel-identical to `Stylizer`'s,
    /// with ETag/Content-Length, HEAD, If-None-Match -> 304; for each shipped model.
    func testFullJobFlowForEachModel() throws {
        let server = try start()
        let c = try server.client()
        let cases = [("microast", "microast-cornell-matisse"), ("adain-vgg19-cd16x", "cd16x-cornell-matisse"),
                     ("adain-vgg19-relu31", "relu31-cornell-brush")]
        for (model, golden) in cases {
            let content = try Golden.content(golden), style = try Golden.style(golden)
            var fields: [(String, String)] = []
            if model != "microast" { fields.append(("model", model)) }
            let post = try c.post("/v1/jobs", form: jobForm(content: content, styles: [style], fields: fields))
            XCTAssertEqual(post.status, 202, post.description)
            let created = try XCTUnwrap(post.json)
            let id = try XCTUnwrap(created["id"] as? String)
            XCTAssertEqual(post.headers["Location"], "/v1/jobs/\(id)")
            XCTAssertTrue(["queued", "running", "succeeded"].contains(created["status"] as? String ?? ""), "\(created)")
            XCTAssertEqual(created["model"] as? String, model)
            for key in ["progress", "queue_position", "parameters", "created_at", "started_at", "finished_at", "error", "result_url"] {
                XCTAssertTrue(created.keys.contains(key), "job JSON lacks \(key)")
            }

            let job = try waitFor(c, id)
            XCTAssertEqual(job["status"] as? String, "succeeded", "\(job)")
            XCTAssertEqual(job["progress"] as? Double, 1)
            XCTAssertEqual(job["result_url"] as? String, "/v1/jobs/\(id)/result")
            XCTAssertNotNil(job["finished_at"] as? String)

            let result = try c.get("/v1/jobs/\(id)/result")
            XCTAssertEqual(result.status, 200)
            XCTAssertEqual(result.headers["Content-Type"], "image/png")
            XCTAssertEqual(result.headers["Content-Length"], String(result.body.count))
            let etag = try XCTUnwrap(result.headers["ETag"])
            XCTAssertEqual(etag, "\"\(SHA256Digest.hex(result.body))\"")
            let ours = try ImageDecoder.decode(result.body)
            assertSamePixels(ours, try directResult(model: model, content: content, styles: [style]), model)
            let expected = try ImageDecoder.decode(try Golden.expected(golden))
            let worst = zip(ours.pixels, expected.pixels).map { abs($0 - $1) * 255 }.max() ?? 99
            XCTAssertLessThanOrEqual(worst, 2.01, "\(model): \(worst) levels from the reference")

            let head = try c.request("HEAD", "/v1/jobs/\(id)/result")
            XCTAssertEqual(head.status, 200)
            XCTAssertEqual(head.headers["Content-Length"], String(result.body.count))
            XCTAssertEqual(head.headers["ETag"], etag)
            XCTAssertTrue(head.body.isEmpty)

            let cached = try c.get("/v1/jobs/\(id)/result", headers: [("If-None-Match", etag)])
            XCTAssertEqual(cached.status, 304)
            XCTAssertEqual(cached.headers["ETag"], etag)
            let other = try c.get("/v1/jobs/\(id)/result", headers: [("If-None-Match", "\"nope\"")])
            XCTAssertEqual(other.status, 200)
        }
    }

    /// Parameters reach the engine: alpha, weights of two styles, max_size, JPEG output.
    func testParametersAndJPEG() throws {
        let server = try start()
        let c = try server.client()
        let name = "microast-goldengate-mix"
        let content = try Golden.content(name), s0 = try Golden.style(name, 0), s1 = try Golden.style(name, 1)
        let id = try submit(c, jobForm(content: content, styles: [s0, s1],
                                       fields: [("alpha", "0.6"), ("style_weights", "0.7,0.3"), ("max_size", "64")]))
        let job = try waitFor(c, id)
        XCTAssertEqual(job["status"] as? String, "succeeded", "\(job)")
        let params = try XCTUnwrap(job["parameters"] as? [String: Any])
        XCTAssertEqual(params["alpha"] as? Double, 0.6)
        XCTAssertEqual(params["style_weights"] as? [Double], [0.7, 0.3])
        XCTAssertEqual(params["max_size"] as? Int, 64)
        let png = try c.get("/v1/jobs/\(id)/result")
        let direct = try directResult(model: "microast", content: content, styles: [s0, s1]) {
            $0.alpha = 0.6; $0.styleWeights = [0.7, 0.3]; $0.maxSize = 64
        }
        let ours = try ImageDecoder.decode(png.body)
        XCTAssertEqual(max(ours.width, ours.height), 64)
        assertSamePixels(ours, direct, "alpha/weights/max_size")

        let jid = try submit(c, jobForm(content: content, styles: [s0], fields: [("format", "jpeg"), ("preserve_color", "true")]))
        XCTAssertEqual(try waitFor(c, jid)["status"] as? String, "succeeded")
        let jpeg = try c.get("/v1/jobs/\(jid)/result")
        XCTAssertEqual(jpeg.headers["Content-Type"], "image/jpeg")
        XCTAssertEqual(Array(jpeg.body.prefix(3)), [0xFF, 0xD8, 0xFF])
    }

    /// `?wait=N` answers as soon as the job has finished, and no later than N (capped by config).
    func testWaitReturnsWhenTheJobFinishesAndIsCapped() throws {
        let g = gate()
        // wait_cap_seconds 3 (times STYLIST_TEST_TIME_SCALE under sanitizers, whose jobs run ~10x
        // slower): the ?wait=30 below is also capped; the job finishes well within it.
        let cap = 3 * (Double(ProcessInfo.processInfo.environment["STYLIST_TEST_TIME_SCALE"] ?? "") ?? 1)
        let server = try start(hooks: g.holdAtFirstLayer) { $0.waitCapSeconds = cap }
        let c = try server.client()
        let id = try submit(c, jobForm(content: try Golden.content(Golden.microast), styles: [try Golden.style(Golden.microast)]))
        XCTAssertTrue(g.waitForArrival(id))
        // The job is held: a long wait is capped at 3 s and returns the unchanged job.
        let t0 = Date()
        let held = try c.get("/v1/jobs/\(id)?wait=300")
        let waited = Date().timeIntervalSince(t0)
        XCTAssertEqual(held.status, 200)
        XCTAssertEqual(held.json?["status"] as? String, "running")
        XCTAssertGreaterThanOrEqual(waited, cap - 0.5)
        XCTAssertLessThan(waited, 30 + cap)
        // A job queued behind it: its wait lasts through queued -> running -> succeeded and answers
        // with the finished job (what `curl ...?wait=30` right after the POST expects).
        let second = try submit(c, jobForm(content: try Golden.content(Golden.microast), styles: [try Golden.style(Golden.microast)]))
        DispatchQueue.global().asyncAfter(deadline: .now() + 0.3) { g.release() }
        let moved = try c.get("/v1/jobs/\(second)?wait=30")
        XCTAssertEqual(moved.status, 200)
        XCTAssertEqual(moved.json?["status"] as? String, "succeeded", "wait answered before the job finished: \(moved)")
        // A finished job answers a wait at once; one that waited would take the whole cap.
        let t1 = Date()
        XCTAssertEqual(try c.get("/v1/jobs/\(id)?wait=300").status, 200)
        XCTAssertLessThan(Date().timeIntervalSince(t1), cap - 0.5, "the wait on a finished job ran to the cap")
        assertProblem(try c.get("/v1/jobs/\(id)?wait=soon"), 400, "wait")
    }

    /// SSE: status and progress events in order, ending with the terminal state.
    func testEventsArriveInOrderAndEnd() throws {
        let g = gate()
        let server = try start(hooks: g.holdAtFirstLayer)
        let c = try server.client()
        let id = try submit(c, jobForm(content: try Golden.content(Golden.microast), styles: [try Golden.style(Golden.microast)]))
        let events = try server.client()
        let (status, headers) = try events.openEvents("/v1/jobs/\(id)/events")
        XCTAssertEqual(status, 200)
        XCTAssertEqual(headers["Content-Type"], "text/event-stream")
        XCTAssertTrue(g.waitForArrival(id))
        g.release()
        var seen: [ServerSentEvent] = []
        while let e = try events.nextEvent() { seen.append(e) }
        // At least the state when the stream opened, a progress report, and the end (reports are
        // spaced 50 ms apart, so a short job may send only its first and last).
        XCTAssertGreaterThanOrEqual(seen.count, 3, "\(seen)")
        let statuses = seen.compactMap { $0.json?["status"] as? String }
        XCTAssertEqual(statuses.count, seen.count)
        XCTAssertEqual(statuses.last, "succeeded")
        XCTAssertEqual(seen.last?.event, "status")
        XCTAssertEqual(seen.first?.event, "status")
        // Status only moves forward; progress never goes back within a status; ids increase.
        let order = ["queued": 0, "running": 1, "succeeded": 2]
        let ranks = statuses.map { order[$0] ?? -1 }
        XCTAssertEqual(ranks, ranks.sorted(), "\(statuses)")
        var lastProgress = -1.0, lastID = -1
        for e in seen {
            let p = e.json?["progress"] as? Double ?? -1
            if e.event == "progress" { XCTAssertGreaterThanOrEqual(p, lastProgress) }
            lastProgress = p
            let n = Int(e.id ?? "") ?? -1
            XCTAssertGreaterThan(n, lastID)
            lastID = n
        }
        XCTAssertTrue(seen.contains { $0.event == "progress" }, "no progress events")
        // A finished job's stream is its final state only.
        let again = try server.client()
        _ = try again.openEvents("/v1/jobs/\(id)/events")
        let final = try again.nextEvent()
        XCTAssertEqual(final?.json?["status"] as? String, "succeeded")
        XCTAssertNil(try again.nextEvent())
        assertProblem(try server.client().get("/v1/jobs/nope/events"), 404)
    }

    /// DELETE: a queued job is canceled and removed at once, a running one stops at its next layer, a finished one is deleted.
    func testCancelQueuedAndRunningJobs() throws {
        let g = gate()
        let server = try start(hooks: g.holdAtFirstLayer)
        let c = try server.client()
        let form = jobForm(content: try Golden.content(Golden.microast), styles: [try Golden.style(Golden.microast)])
        let running = try submit(c, form)
        XCTAssertTrue(g.waitForArrival(running))
        let queued = try submit(c, form)
        let q = try c.get("/v1/jobs/\(queued)")
        XCTAssertEqual(q.json?["status"] as? String, "queued")
        XCTAssertEqual(q.json?["queue_position"] as? Int, 1)

        let cancelQueued = try c.delete("/v1/jobs/\(queued)")
        XCTAssertEqual(cancelQueued.status, 200, cancelQueued.description)
        XCTAssertEqual(cancelQueued.json?["status"] as? String, "canceled")
        // A deleted queued job is gone with its files (it never ran; nothing is kept of it).
        assertProblem(try c.get("/v1/jobs/\(queued)"), 404)
        XCTAssertFalse(FileManager.default.fileExists(atPath: server.dataDirectory.appendingPathComponent("jobs/\(queued)").path))

        let cancelRunning = try c.delete("/v1/jobs/\(running)")
        XCTAssertEqual(cancelRunning.status, 202, cancelRunning.description)
        XCTAssertEqual(cancelRunning.json?["status"] as? String, "running")
        assertProblem(try c.get("/v1/jobs/\(running)/result"), 409)
        g.release()
        let job = try waitFor(c, running)
        XCTAssertEqual(job["status"] as? String, "canceled")
        XCTAssertLessThan(job["progress"] as? Double ?? 1, 1, "the job ran to the end")
        assertProblem(try c.get("/v1/jobs/\(running)/result"), 409, "canceled")
        // No result file was kept.
        XCTAssertFalse(FileManager.default.fileExists(atPath: server.dataDirectory.appendingPathComponent("jobs/\(running)/result").path))

        XCTAssertEqual(try c.delete("/v1/jobs/\(running)").status, 204)
        assertProblem(try c.get("/v1/jobs/\(running)"), 404)
        assertProblem(try c.delete("/v1/jobs/\(running)"), 404)
        XCTAssertFalse(FileManager.default.fileExists(atPath: server.dataDirectory.appendingPathComponent("jobs/\(running)").path))
        // Nothing left in the upload spool.
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: server.dataDirectory.appendingPathComponent("tmp").path), [])
    }

    /// The same Idempotency-Key and form (even with another multipart boundary) gives the same
    /// job; the key with another form is 422.
    func testIdempotencyKey() throws {
        let server = try start()
        let c = try server.client()
        let content = try Golden.content(Golden.microast), style = try Golden.style(Golden.microast)
        let first = try c.post("/v1/jobs", form: jobForm(content: content, styles: [style]), headers: [("Idempotency-Key", "k-1")])
        XCTAssertEqual(first.status, 202)
        let replay = try c.post("/v1/jobs", form: jobForm(content: content, styles: [style]), headers: [("Idempotency-Key", "k-1")])
        XCTAssertEqual(replay.status, 202)
        XCTAssertEqual(replay.json?["id"] as? String, first.json?["id"] as? String)
        XCTAssertEqual(replay.headers["Idempotency-Replayed"], "true")
        let different = try c.post("/v1/jobs", form: jobForm(content: content, styles: [style], fields: [("alpha", "0.5")]),
                                   headers: [("Idempotency-Key", "k-1")])
        assertProblem(different, 422, "Idempotency-Key")
        let other = try c.post("/v1/jobs", form: jobForm(content: content, styles: [style]), headers: [("Idempotency-Key", "k-2")])
        XCTAssertNotEqual(other.json?["id"] as? String, first.json?["id"] as? String)
        assertProblem(try c.post("/v1/jobs", form: jobForm(content: content, styles: [style]), headers: [("Idempotency-Key", String(repeating: "x", count: 300))]), 400)
    }
}
