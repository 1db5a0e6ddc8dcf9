import Foundation
import StylistService
import StylistTesting
import XCTest

/// Slow, idle and vanishing clients cannot lock out normal ones or hold server resources
/// (issue 10, "connections that cannot be starved"). Real sockets against the real server.
final class SlowClientTests: ServiceTestCase {
    /// A connection that writes raw bytes without waiting and ignores failures (the server may close it).
    func rawConnection(_ port: Int) -> HTTPClient? { try? HTTPClient(port: port, timeout: 5) }

    /// 2,000 connections holding half a request head and 600 trickling a 25 MB body, all at
    /// default settings: a normal client is still answered 200, five times in a row, without
    /// waiting for a slot. A locked-out client is refused (503) or waits until an attacker's header
    /// deadline frees a slot; the bound is a third of that deadline, so a busy machine's slowness
    /// is not mistaken for it.
    func testSlowHeadsAndTricklingBodiesDoNotLockOutNormalClients() throws {
        let server = try start()
        let port = server.port
        let lockedOut = server.config.http.headerTimeoutSeconds
        var heads: [HTTPClient] = []
        for _ in 0..<2000 {
            guard let s = rawConnection(port) else { break }
            s.sendWithoutWaiting("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            heads.append(s)
        }
        var bodies: [HTTPClient] = []
        for _ in 0..<600 {
            guard let s = rawConnection(port) else { break }
            s.sendWithoutWaiting("POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: 26214400\r\n\r\n-")
            bodies.append(s)
        }
        XCTAssertEqual(heads.count + bodies.count, 2600, "could not open the attacking connections")
        let trickling = DispatchQueue(label: "trickle")
        let stop = DispatchSemaphore(value: 0)
        let tricklers = bodies
        trickling.async {
            while stop.wait(timeout: .now() + 0.1) == .timedOut { for b in tricklers { b.sendWithoutWaiting("-") } }
        }
        defer { stop.signal() }
        for attempt in 1...5 {
            let t0 = Date()
            let c = try HTTPClient(port: port, timeout: 2 * lockedOut)
            let r = try c.get("/healthz")
            let seconds = Date().timeIntervalSince(t0)
            XCTAssertEqual(r.status, 200, "attempt \(attempt): \(r.description)")
            XCTAssertLessThan(seconds, lockedOut / 3, "attempt \(attempt) took \(seconds) s, as if it waited for a slot")
        }
        withExtendedLifetime((heads, bodies)) {}
    }

    /// A body that keeps arriving, but a few bytes at a time, gets 408 once its average rate falls
    /// below the minimum, while the bytes still arrive (the old stall timer restarted on every byte
    /// and fired only once the trickle stopped).
    func testTricklingBodyGets408() throws {
        let server = try start {
            $0.http.bodyTimeoutSeconds = 1
            $0.http.minBodyBytesPerSecond = 1000
        }
        let c = try HTTPClient(port: server.port, timeout: 30)
        try c.send("POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: 100000\r\n\r\n")
        let t0 = Date()
        final class Box: @unchecked Sendable { var response: ClientResponse? }
        let box = Box()
        let reader = DispatchQueue(label: "reader")
        let done = DispatchSemaphore(value: 0)
        reader.async { box.response = try? c.readResponse(); done.signal() }
        var answeredWhileTrickling = false
        while Date().timeIntervalSince(t0) < 20 {
            if done.wait(timeout: .now() + 0.1) == .success { answeredWhileTrickling = true; break }
            try? c.send("0123456789")   // 100 bytes per second
        }
        XCTAssertTrue(answeredWhileTrickling, "no answer during 20 s of trickling")
        if !answeredWhileTrickling { _ = done.wait(timeout: .now() + 5) }
        let answered = box.response
        XCTAssertEqual(answered?.status, 408, answered?.description ?? "no answer")
    }

    /// Routes that take no body refuse one before reading it: the 25 MB body announced here is
    /// never sent, so a server that read it first could only answer once its body deadline passed
    /// (408), never 413.
    func testBodyOnABodylessRouteIsRefusedUnread() throws {
        let server = try start()
        let c = try server.client()
        let r = try c.request("GET", "/healthz", headers: [("Content-Length", "26214400")])
        XCTAssertEqual(r.status, 413, r.description)
        assertProblem(r, 413, "takes no request body")
    }

    /// `?wait=60` from clients that reset at once: the waits end with their connections.
    func testLongPollsEndWhenTheirClientsGoAway() throws {
        let g = gate()
        let server = try start(hooks: g.holdAtFirstLayer)
        let c = try server.client()
        let id = try submit(c, jobForm(content: try Golden.content(Golden.microast), styles: [try Golden.style(Golden.microast)]))
        XCTAssertTrue(g.waitForArrival(id))
        var sockets: [HTTPClient] = []
        for _ in 0..<50 {
            let s = try XCTUnwrap(rawConnection(server.port))
            s.sendWithoutWaiting("GET /v1/jobs/\(id)?wait=60 HTTP/1.1\r\nHost: x\r\n\r\n")
            sockets.append(s)
        }
        XCTAssertTrue(TestServer.eventually(timeout: 5) { server.server.jobs.stats().waiting == 50 }, "\(server.server.jobs.stats().waiting)")
        for s in sockets { s.reset() }
        sockets = []
        XCTAssertTrue(TestServer.eventually(timeout: 5) { server.server.jobs.stats().waiting == 0 },
                      "waits still running after their clients left: \(server.server.jobs.stats().waiting)")
        g.release()
    }

    /// Event-stream clients that vanish while their job reports progress: the server keeps
    /// answering and the jobs finish (dropping a stream once deadlocked the job system).
    func testDroppedEventStreamsDoNotStallTheServer() throws {
        let server = try start()
        let content = try TestPaths.bytes(TestPaths.images + "/content/cornell.jpg")
        let style = try TestPaths.bytes(TestPaths.images + "/style/woman_with_hat_matisse.jpg")
        for _ in 0..<8 {
            let id = try submit(try server.client(), jobForm(content: content, styles: [style]))
            // Streams opened and dropped while the job runs and reports progress layer by layer.
            let deadline = Date().addingTimeInterval(20)
            while Date() < deadline {
                var streams: [HTTPClient] = []
                for _ in 0..<20 {
                    guard let s = rawConnection(server.port) else { continue }
                    s.sendWithoutWaiting("GET /v1/jobs/\(id)/events HTTP/1.1\r\nHost: x\r\n\r\n")
                    streams.append(s)
                }
                Thread.sleep(forTimeInterval: 0.01)
                for s in streams { s.reset() }
                // A new connection per poll: between polls a kept-alive one is the idle connection
                // that admission closes first when dropped streams fill the per-address limit.
                if try server.client().get("/v1/jobs/\(id)").json?["status"] as? String == "succeeded" { break }
            }
            XCTAssertEqual(try waitFor(try server.client(), id, timeout: 30)["status"] as? String, "succeeded")
        }
        let probe = try HTTPClient(port: server.port, timeout: 5)
        XCTAssertEqual(try probe.get("/healthz").status, 200)
    }
}
