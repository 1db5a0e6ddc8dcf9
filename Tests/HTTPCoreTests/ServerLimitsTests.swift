#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Logging
import XCTest
import HTTPCore
import TestSupport

/// Limits, timeouts and misbehaving clients: oversized or malformed requests, stalls, slow readers, connection limits, shutdown.
final class ServerLimitsTests: ServerTestCase {
    func testHeadersTooLargeIs431() throws {
        let server = try makeServer()
        let c = try HTTPClient(port: server.boundPort, timeout: 10)
        try c.send("GET /hello HTTP/1.1\r\nHost: x\r\nX-Big: \(String(repeating: "a", count: 20000))\r\n\r\n")
        let r = try c.readResponse()
        XCTAssertEqual(r.status, 431)
        XCTAssertEqual(recorder.spoolPaths, ["rejected 431 -"])
        XCTAssertEqual(r.headers["Content-Type"], "application/problem+json")
        XCTAssertEqual(r.headers["Connection"], "close")
        let json = try JSONSerialization.jsonObject(with: Data(r.body)) as? [String: Any]
        XCTAssertEqual(json?["status"] as? Int, 431)
        XCTAssertNotNil(json?["detail"] as? String)
        XCTAssertTrue(c.isClosedByPeer())
    }

    func testContentLengthOverLimitIs413BeforeTheBodyIsSent() throws {
        let server = try makeServer()
        let c = try HTTPClient(port: server.boundPort, timeout: 10)
        try c.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: \(30 * 1024 * 1024)\r\n\r\n")
        let r = try c.readResponse()
        XCTAssertEqual(r.status, 413)
        XCTAssertEqual(r.headers["Connection"], "close")
        XCTAssertTrue(c.isClosedByPeer())
    }

    func testChunkedBodyOverLimitIs413() throws {
        let server = try makeServer { $0.maxBodyBytes = 1000 }
        let c = try HTTPClient(port: server.boundPort, timeout: 10)
        try c.send("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n400\r\n")
        XCTAssertEqual(try c.readResponse().status, 413)
    }

    func testMissingLengthIs411AndSmugglingIs400() throws {
        let server = try makeServer()
        XCTAssertEqual(try HTTPClient.exchange(port: server.boundPort, "POST /echo HTTP/1.1\r\nHost: x\r\n\r\n", timeout: 10).status, 411)
        let c = try HTTPClient(port: server.boundPort, timeout: 10)
        try c.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        let r = try c.readResponse()
        XCTAssertEqual(r.status, 400)
        XCTAssertEqual(r.headers["Connection"], "close")
        XCTAssertTrue(c.isClosedByPeer(), "smuggled request must not be answered")
        XCTAssertEqual(try HTTPClient.exchange(port: server.boundPort, "GET / HTTP/3.0\r\nHost: x\r\n\r\n", timeout: 10).status, 505)
    }

    func testStalledBodyIs408() throws {
        let server = try makeServer { $0.bodyTimeout = 0.5 }
        let c = try HTTPClient(port: server.boundPort, timeout: 10)
        try c.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
        let r = try c.readResponse()
        XCTAssertEqual(r.status, 408)
        XCTAssertEqual(recorder.spoolPaths, ["rejected 408 /echo"])
        XCTAssertEqual(r.headers["Connection"], "close")
        XCTAssertTrue(c.isClosedByPeer())
    }

    func testStalledHeadIs408AndIdleKeepAliveClosesSilently() throws {
        let server = try makeServer { $0.headerTimeout = 0.5; $0.idleTimeout = 0.5 }
        let c = try HTTPClient(port: server.boundPort, timeout: 10)
        try c.send("GET /hello HTTP/1.1\r\nHo")
        XCTAssertEqual(try c.readResponse().status, 408)
        let d = try HTTPClient(port: server.boundPort, timeout: 10)
        try d.send("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        XCTAssertEqual(try d.readResponse().status, 200)
        XCTAssertTrue(d.isClosedByPeer(), "idle keep-alive connection should be closed without a response")
    }

    /// At the connection limit an idle (or still incomplete) connection is closed to make room;
    /// only when every connection is being answered is a new one refused with 503.
    func testConnectionLimitEvictsIdleConnectionsAndAnswers503WhenAllAreBusy() throws {
        let server = try makeServer { $0.maxConnections = 1 }
        let a = try HTTPClient(port: server.boundPort, timeout: 10)
        try a.send("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        XCTAssertEqual(try a.readResponse().status, 200)
        // `a` is idle (keep-alive): it makes room for `b`. The server marks it idle just after the
        // last byte is sent, so the client can read the answer a moment before that, and a `b`
        // arriving then finds `a` still being answered and is refused: try again until admitted.
        var admitted: HTTPClient?
        var refusals = 0
        let deadline = Date().addingTimeInterval(10)
        while admitted == nil && Date() < deadline {
            let b = try HTTPClient(port: server.boundPort, timeout: 10)
            try b.send("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
            let r = try b.readResponse()
            if r.status == 200 {
                admitted = b
            } else {
                XCTAssertEqual(r.status, 503)
                refusals += 1
                usleep(10_000)
            }
        }
        let b = try XCTUnwrap(admitted, "an idle connection never made room (\(refusals) refusals in 10 s)")
        XCTAssertTrue(a.isClosedByPeer())
        // `b` is being answered (a handler held until `c` has its answer): `c` is refused.
        defer { recorder.openGate() }
        try b.send("GET /slow?gate=1&n=b HTTP/1.1\r\nHost: x\r\n\r\n")
        XCTAssertTrue(eventually({ self.recorder.slowBegun == ["b"] }, timeout: 10), "b's request was never answered")
        let c = try HTTPClient(port: server.boundPort, timeout: 10)
        let r = try c.readResponse()
        XCTAssertEqual(r.status, 503)
        XCTAssertEqual(r.headers["Content-Type"], "application/problem+json")
        XCTAssertEqual(r.headers["Retry-After"], "1")
        XCTAssertTrue(c.isClosedByPeer())
        recorder.openGate()
        XCTAssertEqual(try b.readResponse().text, "slow b")
    }

    /// One client address cannot hold more than its share: its oldest idle or incomplete connection goes.
    func testPerAddressLimitClosesThatAddresssOldestIncompleteConnection() throws {
        let server = try makeServer { $0.maxConnectionsPerAddress = 3 }
        var slow: [HTTPClient] = []
        for i in 0..<3 {
            let s = try HTTPClient(port: server.boundPort, timeout: 10)
            try s.send("GET /hello HTTP/1.1\r\nHost: x\r\n")   // half a head
            slow.append(s)
            // Admitted before the next one connects, so the first is the oldest.
            XCTAssertTrue(eventually({ server.connectionCount == i + 1 }, timeout: 10), "connection \(i) never admitted")
        }
        let d = try HTTPClient(port: server.boundPort, timeout: 10)
        try d.send("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        XCTAssertEqual(try d.readResponse().status, 200)
        XCTAssertTrue(slow[0].isClosedByPeer(), "the oldest incomplete connection was kept")
    }

    /// A client that reads a large response slowly is cut off: the server drops the connection
    /// (by the stall check or the minimum rate, whichever the kernel's buffering trips first) long
    /// before the response could be read at that pace.
    func testSlowReaderOfAResponseIsClosed() throws {
        let server = try makeServer {
            $0.idleTimeout = 2
            $0.minBodyBytesPerSecond = 2_000_000
        }
        let path = spool + "/big.bin"
        FileManager.default.createFile(atPath: path, contents: Data(count: 32 << 20))
        recorder.servedFile = path
        // A small receive buffer, so the server's writes block as soon as the reader lags.
        let c = try HTTPClient(port: server.boundPort, timeout: 10, receiveBufferSize: 4096)
        try c.send("GET /file HTTP/1.1\r\nHost: x\r\n\r\n")
        let t0 = Date()
        var dropped: Double?
        while Date().timeIntervalSince(t0) < 20 {
            guard (try? c.receiveAndDiscard(maxBytes: 2048)) == true else { break }
            if dropped == nil && server.connectionCount == 0 { dropped = Date().timeIntervalSince(t0); break }
            Thread.sleep(forTimeInterval: 0.02)   // about 100 KB/s: 32 MB would take five minutes
        }
        let at = try XCTUnwrap(dropped, "the slow reader kept its connection for 20 s")
        XCTAssertLessThan(at, 10)
    }

    /// Bytes that keep arriving do not move the header deadline: the 408 comes while the head is
    /// still trickling in (a deadline restarted by every byte would wait for the 20 s trickle to end).
    func testHeaderTimeoutIsNotResetByTrickledBytes() throws {
        let server = try makeServer { $0.headerTimeout = 0.6 }
        let c = try HTTPClient(port: server.boundPort, timeout: 30)
        let head = Array("GET /hello HTTP/1.1\r\nHost: x\r\nX-Slow: ".utf8) + [UInt8](repeating: 0x61, count: 400)
        final class Box: @unchecked Sendable { var response: ClientResponse? }
        let box = Box()
        let answered = DispatchSemaphore(value: 0)
        DispatchQueue(label: "reader").async { box.response = try? c.readResponse(); answered.signal() }
        var sent = 0
        var hasAnswer = false
        while sent < head.count {   // a byte every 50 ms: 20 s for the whole head
            if answered.wait(timeout: .now() + 0.05) == .success { hasAnswer = true; break }
            guard (try? c.send([head[sent]])) != nil else { break }   // closed by the server
            sent += 1
        }
        XCTAssertLessThan(sent, head.count, "the server waited for the whole trickled head")
        if !hasAnswer { XCTAssertEqual(answered.wait(timeout: .now() + 10), .success) }
        XCTAssertEqual(box.response?.status, 408, box.response?.description ?? "no answer")
    }

    func testStalledReaderIsDisconnected() throws {
        let server = try makeServer { $0.idleTimeout = 0.5 }
        let path = spool + "/big.bin"
        FileManager.default.createFile(atPath: path, contents: Data(count: 32 << 20))
        recorder.servedFile = path
        let c = try HTTPClient(port: server.boundPort, timeout: 10, receiveBufferSize: 4096)
        try c.send("GET /file HTTP/1.1\r\nHost: x\r\n\r\n")
        let (status, headers) = try c.readHead()
        XCTAssertEqual(status, 200)
        XCTAssertEqual(headers["Content-Length"], "\(32 << 20)")
        XCTAssertEqual(server.connectionCount, 1)
        // Stop reading: the server must give up on the write after the idle timeout.
        XCTAssertTrue(eventually({ server.connectionCount == 0 }, timeout: 10))
        // (Not draining the client socket here: with a 4 KiB receive window the kernel's zero-window probes make that slow.)
    }

    func testGracefulShutdownFinishesInFlightRequests() throws {
        let server = try makeServer()
        let c = try HTTPClient(port: server.boundPort, timeout: 10)
        try c.send("GET /slow?ms=400&n=9 HTTP/1.1\r\nHost: x\r\n\r\n")
        // In flight before the shutdown starts: a connection whose request has not arrived is idle and closed at once.
        XCTAssertTrue(eventually({ self.recorder.slowBegun == ["9"] }, timeout: 10), "the request was never answered")
        let done = expectation(description: "shutdown returned")
        DispatchQueue.global().async {
            server.shutdown(grace: 10)
            done.fulfill()
        }
        let r = try c.readResponse()
        XCTAssertEqual(r.text, "slow 9")
        XCTAssertEqual(r.headers["Connection"], "close")
        wait(for: [done], timeout: 10)
        XCTAssertThrowsError(try HTTPClient(port: server.boundPort, timeout: 10), "listener should be closed")
    }

    func testPortInUseThrowsAClearError() throws {
        let server = try makeServer()
        var config = HTTPServerConfiguration()
        config.host = "127.0.0.1"
        config.port = server.boundPort
        let second = HTTPServer(configuration: config, responder: TestResponder(recorder: recorder), logger: Logger(label: "t"))
        XCTAssertThrowsError(try second.start()) { error in
            XCTAssertTrue("\(error)".contains("already in use"), "\(error)")
        }
    }
}
