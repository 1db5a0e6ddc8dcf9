import Foundation
import StylistService
import StylistTesting
import XCTest

/// Slow, idle and vanishing clients cannot lock out normal ones or hold server resources
/// (issue 10, "connections that cannot be starved"). Real sockets against the real server.
final class SlowClientTests: ServiceTestCase {
    /// A TCP connection to the server that writes raw bytes and ignores failures (the server may close it).
    final class RawSocket {
        let fd: Int32
        init?(port: Int) {
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_port = in_port_t(UInt16(port).bigEndian)
            inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr)
            fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            guard fd >= 0 else { return nil }
            let rc = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard rc == 0 else { Glibc.close(fd); return nil }
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        }
        func send(_ text: String) { _ = Array(text.utf8).withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) } }
        private var open = true
        /// Closes with a reset (SO_LINGER 0), as a client that vanishes does.
        func reset() {
            guard open else { return }
            var l = linger(l_onoff: 1, l_linger: 0)
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, socklen_t(MemoryLayout<linger>.size))
            Glibc.close(fd)
            open = false
        }
        // Closed once only: the test server shares this process, and a second close could hit a
        // descriptor the server has opened since.
        deinit { if open { Glibc.close(fd) } }
    }

    /// 2,000 connections holding half a request head and 600 trickling a 25 MB body, all at
    /// default settings: a normal client is still answered 200 within a second, five times in a row.
    func testSlowHeadsAndTricklingBodiesDoNotLockOutNormalClients() throws {
        let server = try start()
        let port = server.port
        var heads: [RawSocket] = []
        for _ in 0..<2000 {
            guard let s = RawSocket(port: port) else { break }
            s.send("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            heads.append(s)
        }
        var bodies: [RawSocket] = []
        for _ in 0..<600 {
            guard let s = RawSocket(port: port) else { break }
            s.send("POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: 26214400\r\n\r\n-")
            bodies.append(s)
        }
        XCTAssertEqual(heads.count + bodies.count, 2600, "could not open the attacking connections")
        let trickling = DispatchQueue(label: "trickle")
        let stop = DispatchSemaphore(value: 0)
        let tricklers = bodies
        trickling.async {
            while stop.wait(timeout: .now() + 0.1) == .timedOut { for b in tricklers { b.send("-") } }
        }
        defer { stop.signal() }
        for attempt in 1...5 {
            let t0 = Date()
            let c = try HTTPClient(port: port, timeout: 5)
            let r = try c.get("/healthz")
            let seconds = Date().timeIntervalSince(t0)
            XCTAssertEqual(r.status, 200, "attempt \(attempt): \(r.description)")
            XCTAssertLessThan(seconds, 1.0, "attempt \(attempt) took \(seconds) s")
        }
        withExtendedLifetime((heads, bodies)) {}
    }

    /// A body that keeps arriving, but a few bytes at a time, gets 408 once its average rate falls
    /// below the minimum (the old stall timer restarted on every byte and never fired).
    func testTricklingBodyGets408() throws {
        let server = try start {
            $0.http.bodyTimeoutSeconds = 1
            $0.http.minBodyBytesPerSecond = 1000
        }
        let c = try HTTPClient(port: server.port, timeout: 10)
        try c.send("POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: 100000\r\n\r\n")
        let t0 = Date()
        final class Box: @unchecked Sendable { var response: ClientResponse? }
        let box = Box()
        let reader = DispatchQueue(label: "reader")
        let done = DispatchSemaphore(value: 0)
        reader.async { box.response = try? c.readResponse(); done.signal() }
        while done.wait(timeout: .now() + 0.1) == .timedOut {
            try? c.send("0123456789")   // 100 bytes per second
            if Date().timeIntervalSince(t0) > 8 { break }
        }
        _ = done.wait(timeout: .now() + 2)
        let answered = box.response
        XCTAssertEqual(answered?.status, 408, answered?.description ?? "no answer")
        XCTAssertLessThan(Date().timeIntervalSince(t0), 5)
    }

    /// Routes that take no body refuse one before reading it.
    func testBodyOnABodylessRouteIsRefusedUnread() throws {
        let server = try start()
        let c = try server.client()
        let t0 = Date()
        let r = try c.request("GET", "/healthz", headers: [("Content-Length", "26214400")])
        XCTAssertEqual(r.status, 413, r.description)
        XCTAssertLessThan(Date().timeIntervalSince(t0), 1)
        assertProblem(r, 413, "takes no request body")
    }

    /// `?wait=60` from clients that reset at once: the waits end with their connections.
    func testLongPollsEndWhenTheirClientsGoAway() throws {
        let g = gate()
        let server = try start(hooks: g.holdAtFirstLayer)
        let c = try server.client()
        let id = try submit(c, jobForm(content: try Golden.content(Golden.microast), styles: [try Golden.style(Golden.microast)]))
        XCTAssertTrue(g.waitForArrival(id))
        var sockets: [RawSocket] = []
        for _ in 0..<50 {
            let s = try XCTUnwrap(RawSocket(port: server.port))
            s.send("GET /v1/jobs/\(id)?wait=60 HTTP/1.1\r\nHost: x\r\n\r\n")
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
        let c = try server.client()
        let content = try TestPaths.bytes(TestPaths.images + "/content/cornell.jpg")
        let style = try TestPaths.bytes(TestPaths.images + "/style/woman_with_hat_matisse.jpg")
        for _ in 0..<8 {
            let id = try submit(c, jobForm(content: content, styles: [style]))
            // Streams opened and dropped while the job runs and reports progress layer by layer.
            let deadline = Date().addingTimeInterval(20)
            while Date() < deadline {
                var streams: [RawSocket] = []
                for _ in 0..<20 {
                    guard let s = RawSocket(port: server.port) else { continue }
                    s.send("GET /v1/jobs/\(id)/events HTTP/1.1\r\nHost: x\r\n\r\n")
                    streams.append(s)
                }
                Thread.sleep(forTimeInterval: 0.01)
                for s in streams { s.reset() }
                if try c.get("/v1/jobs/\(id)").json?["status"] as? String == "succeeded" { break }
            }
            XCTAssertEqual(try waitFor(c, id, timeout: 30)["status"] as? String, "succeeded")
        }
        let probe = try HTTPClient(port: server.port, timeout: 5)
        XCTAssertEqual(try probe.get("/healthz").status, 200)
    }
}
