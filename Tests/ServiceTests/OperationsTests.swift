import Foundation
import StylistService
import StylistTesting
import XCTest

/// Health, metrics, logs, durability across restarts, graceful shutdown, `stylist serve`.
final class OperationsTests: ServiceTestCase {
    func testHealthReadinessAndMetrics() throws {
        let server = try start()
        let c = try server.client()
        XCTAssertEqual(try c.get("/healthz").json?["status"] as? String, "ok")
        let ready = try c.get("/readyz")
        XCTAssertEqual(ready.status, 200)
        XCTAssertEqual(ready.json?["status"] as? String, "ready")
        let id = try submit(c, jobForm(content: try Golden.content(Golden.microast), styles: [try Golden.style(Golden.microast)]))
        XCTAssertEqual(try waitFor(c, id)["status"] as? String, "succeeded")
        let poll = try c.get("/v1/jobs/\(id)")   // answered at once, without the async handler
        XCTAssertEqual(poll.status, 200)
        XCTAssertNil(poll.headers["X-Job-Id"], "the job id reaches the log, not the client")
        XCTAssertEqual(try c.get("/v1/jobs/\(id)/result").status, 200)
        _ = try c.get("/nope")

        let m = try c.get("/metrics")
        XCTAssertEqual(m.status, 200)
        XCTAssertEqual(m.headers["Content-Type"], "text/plain; version=0.0.4; charset=utf-8")
        let text = m.text
        for needle in [
            "stylist_http_requests_total{route=\"/v1/jobs\",method=\"POST\",status=\"202\"} 1",
            "stylist_http_requests_total{route=\"unmatched\",method=\"GET\",status=\"404\"} 1",
            "# TYPE stylist_http_request_duration_seconds histogram",
            "stylist_http_request_duration_seconds_bucket{route=\"/v1/jobs\",le=\"+Inf\"} 1",
            "stylist_queue_depth 0",
            "stylist_jobs_total{outcome=\"succeeded\"} 1",
            "stylist_inference_seconds_count{model=\"microast\"} 1",
            "stylist_engine_gflops{model=\"microast\"}",
        ] {
            XCTAssertTrue(text.contains(needle), "metrics lack \(needle):\n\(text)")
        }
        // Every sample line is `name{labels} value` with a numeric value.
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            let value = line.split(separator: " ").last.map(String.init) ?? ""
            XCTAssertTrue(Double(value) != nil || value == "+Inf" || value == "NaN", "bad sample: \(line)")
        }
        // One structured log line per request and per job transition.
        // (The job's line is written just after its state changes: wait for it.)
        XCTAssertTrue(TestServer.eventually(timeout: 10) {
            server.logLines.contains { $0.contains("job finished") && $0.contains("status=succeeded") && $0.contains("job=\(id)") }
        }, "\(server.logLines)")
        let logs = server.logLines
        XCTAssertTrue(logs.contains { $0.contains("request") && $0.contains("route=/v1/jobs ") && $0.contains("status=202") }, "\(logs)")
        // A request about a job names it: the submission, a poll answered at once, the result.
        for route in ["/v1/jobs ", "/v1/jobs/{id} ", "/v1/jobs/{id}/result "] {
            XCTAssertTrue(logs.contains { $0.contains(" request ") && $0.contains("route=\(route)") && $0.contains("job=\(id)") },
                          "no request line for \(route)with job=\(id): \(logs)")
        }
        XCTAssertFalse(logs.contains { $0.contains(" request ") && $0.contains("path=/nope ") && $0.contains("job=") })
        XCTAssertTrue(logs.contains { $0.contains("job started") && $0.contains("job=\(id)") })
    }

    func testJSONLogFormat() throws {
        let server = try start { $0.logFormat = "json" }
        _ = try server.client().get("/healthz")
        let line = try XCTUnwrap(server.logLines.last { $0.contains("\"msg\":\"request\"") })
        let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        XCTAssertEqual(object["path"] as? String, "/healthz")
        XCTAssertEqual(object["status"] as? String, "200")
        XCTAssertEqual(object["level"] as? String, "info")
    }

    /// A queued job (and the interrupted running one) survive a restart on the same data
    /// directory and then complete.
    func testRestartRunsQueuedAndInterruptedJobs() throws {
        let g = gate()
        let server = try start(hooks: g.holdAtFirstLayer)
        let c = try server.client()
        let form = jobForm(content: try Golden.content(Golden.microast), styles: [try Golden.style(Golden.microast)])
        let running = try submit(c, form)
        XCTAssertTrue(g.waitForArrival(running))
        let queued = try submit(c, form)
        c.close()
        server.stop(grace: 0.2)   // the held job is persisted as queued
        g.release()
        try server.restart(hooks: StylistHooks())
        let c2 = try server.client()
        for id in [running, queued] {
            let job = try waitFor(c2, id)
            XCTAssertEqual(job["status"] as? String, "succeeded", "\(job)")
            XCTAssertEqual(try c2.get("/v1/jobs/\(id)/result").status, 200)
        }
    }

    /// On shutdown: readiness fails, new jobs get 503, the running job may finish within the grace.
    func testShutdownLetsTheRunningJobFinish() throws {
        let g = gate()
        let server = try start(hooks: g.holdAtFirstLayer)
        let c = try server.client()
        let form = jobForm(content: try Golden.content(Golden.microast), styles: [try Golden.style(Golden.microast)])
        let id = try submit(c, form)
        XCTAssertTrue(g.waitForArrival(id))
        let stopped = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            server.stop(grace: 60)
            stopped.signal()
        }
        XCTAssertTrue(try TestServer.eventually(timeout: 10) { try c.get("/readyz").status == 503 })
        assertProblem(try c.post("/v1/jobs", form: form), 503, "shutting down")
        g.release()
        XCTAssertEqual(stopped.wait(timeout: .now() + 60), .success)
        try server.restart(hooks: StylistHooks())
        let job = try waitFor(try server.client(), id)
        XCTAssertEqual(job["status"] as? String, "succeeded")
        XCTAssertEqual(job["finished_at"] as? String != nil, true)
        XCTAssertTrue(TestServer.eventually(timeout: 10) { server.logLines.contains { $0.contains("job finished") && $0.contains(id) } })
    }

    /// The real binary: `stylist serve`, SIGTERM, exit status 0.
    func testServeCommandExitsZeroOnSIGTERM() throws {
        let runner = URL(fileURLWithPath: (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0])
        let binary = runner.deletingLastPathComponent().appendingPathComponent("stylist")
        guard FileManager.default.isExecutableFile(atPath: binary.path) else {
            throw XCTSkip("the stylist binary is not next to the test runner (\(binary.path))")
        }
        let data = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("stylist-serve-\(getpid())")
        defer { try? FileManager.default.removeItem(at: data) }
        let p = Process()
        p.executableURL = binary
        p.arguments = ["serve", "--host", "127.0.0.1", "--port", "0", "--data-dir", data.path, "--models", TestPaths.models]
        p.currentDirectoryURL = TestPaths.repoRoot
        var env = ProcessInfo.processInfo.environment
        env["STYLIST_SHUTDOWN_GRACE_SECONDS"] = "5"
        p.environment = env
        let err = Pipe()
        p.standardError = err
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        defer { if p.isRunning { p.terminate() } }
        // Read stderr until the "serving" line gives the port.
        var log = ""
        var port = 0
        let deadline = Date().addingTimeInterval(60)
        while port == 0 && Date() < deadline {
            let chunk = err.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            log += String(decoding: chunk, as: UTF8.self)
            if let r = log.range(of: #"url=http://127\.0\.0\.1:(\d+)"#, options: .regularExpression) {
                port = Int(log[r].split(separator: ":").last ?? "") ?? 0
            }
        }
        XCTAssertGreaterThan(port, 0, log)
        let c = try HTTPClient(port: port)
        XCTAssertEqual(try c.get("/healthz").status, 200)
        XCTAssertTrue(log.contains("configuration read") && log.contains("config/stylist.json"), log)
        kill(p.processIdentifier, SIGTERM)
        p.waitUntilExit()
        log += String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        XCTAssertEqual(p.terminationStatus, 0, log)
        XCTAssertTrue(log.contains("signal received") && log.contains("stopped"), log)
    }
}
