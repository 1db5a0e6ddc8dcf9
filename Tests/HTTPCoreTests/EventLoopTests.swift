#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Logging
import XCTest
import HTTPCore
import TestSupport

/// The event loops under the traffic that can lose an edge-triggered event or touch a closed
/// socket: many busy keep-alive connections across loops, pipelining, responses larger than the
/// socket buffer, clients that vanish mid-response, slow clients, TLS, and shutdown.
final class EventLoopTests: ServerTestCase {
    /// Requests answered at once and from tasks, on 64 connections spread over three loops: every
    /// answer arrives, in order, and no connection is dropped.
    func testManyKeepAliveConnectionsEachServeManyRequests() throws {
        let server = try makeServer { $0.eventLoopThreads = 3 }
        let port = server.boundPort
        let failures = NSLock()
        var errors: [String] = []
        DispatchQueue.concurrentPerform(iterations: 64) { i in
            do {
                let c = try HTTPClient(port: port, timeout: 10)
                for j in 0..<150 {
                    if j % 3 == 0 {
                        try c.send("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
                        let r = try c.readResponse()
                        if r.text != "hello" { throw ClientError("connection \(i) request \(j): \(r.text)") }
                    } else {
                        try c.send("GET /now?n=\(i)-\(j) HTTP/1.1\r\nHost: x\r\n\r\n")
                        let r = try c.readResponse()
                        if r.text != "now \(i)-\(j)" { throw ClientError("connection \(i) request \(j): \(r.text)") }
                    }
                }
            } catch {
                failures.lock(); errors.append("\(error)"); failures.unlock()
            }
        }
        XCTAssertEqual(errors, [])
    }

    /// Connections that each send a long run of pipelined requests in one write (more than one read
    /// takes) get every answer in order.
    func testPipelinedRunsOnSeveralConnectionsAreAnsweredInOrder() throws {
        let server = try makeServer { $0.eventLoopThreads = 2 }
        let port = server.boundPort
        let failures = NSLock()
        var errors: [String] = []
        DispatchQueue.concurrentPerform(iterations: 8) { i in
            do {
                let c = try HTTPClient(port: port, timeout: 10)
                var text = ""
                for j in 0..<1500 { text += "GET /now?n=\(i)-\(j)&pad=\(String(repeating: "p", count: 40)) HTTP/1.1\r\nHost: x\r\n\r\n" }
                let payload = text
                let sender = Thread { try? c.send(payload) }
                sender.start()
                for j in 0..<1500 {
                    let r = try c.readResponse()
                    if r.text != "now \(i)-\(j)" { throw ClientError("connection \(i) answer \(j): \(r.text)") }
                }
            } catch {
                failures.lock(); errors.append("\(error)"); failures.unlock()
            }
        }
        XCTAssertEqual(errors, [])
    }

    /// A response far larger than the socket buffers, to a client that starts reading late and
    /// reads in small pieces, arrives whole (the writes resume on each writable edge), and the
    /// connection then serves its next request.
    func testLargeResponseToASlowReaderArrivesWhole() throws {
        let server = try makeServer()
        let path = spool + "/pattern.bin"
        let content = (0..<(6 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 11) }
        FileManager.default.createFile(atPath: path, contents: Data(content))
        recorder.servedFile = path
        let c = try HTTPClient(port: server.boundPort, timeout: 10, receiveBufferSize: 16384)
        try c.send("GET /file HTTP/1.1\r\nHost: x\r\n\r\n")
        usleep(300_000)   // the server fills both socket buffers and waits
        let (status, headers) = try c.readHead()
        XCTAssertEqual(status, 200)
        XCTAssertEqual(headers["Content-Length"], "\(content.count)")
        var received: [UInt8] = []
        received.reserveCapacity(content.count)
        while received.count < content.count {
            let piece = try c.readBytes(min(16384, content.count - received.count))
            received += piece
            if received.count < 1 << 20 && received.count % (256 << 10) < 16384 { usleep(20_000) }
        }
        XCTAssertTrue(received == content, "the body differs from the file")
        try c.send("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        XCTAssertEqual(try c.readResponse().text, "hello")
    }

    /// A client that resets its connection in the middle of a large response frees the connection
    /// at once (not after the write timeout), and the loop goes on serving others.
    func testClientResettingMidResponseIsClosedAtOnce() throws {
        let server = try makeServer { $0.idleTimeout = 60 }
        let path = spool + "/big.bin"
        FileManager.default.createFile(atPath: path, contents: Data(count: 32 << 20))
        recorder.servedFile = path
        for _ in 0..<5 {
            let c = try HTTPClient(port: server.boundPort, timeout: 10, receiveBufferSize: 4096)
            try c.send("GET /file HTTP/1.1\r\nHost: x\r\n\r\n")
            let (status, _) = try c.readHead()
            XCTAssertEqual(status, 200)
            c.reset()
        }
        XCTAssertTrue(eventually({ server.connectionCount == 0 }, timeout: 5), "\(server.connectionCount) connections left open")
        let d = try HTTPClient(port: server.boundPort, timeout: 10)
        try d.send("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        XCTAssertEqual(try d.readResponse().text, "hello")
    }

    /// A request and the client's FIN that reach a busy loop together, so one edge announces both:
    /// the read that takes the request is short, yet the end of input behind it must still be
    /// seen, so the connection closes after the answer instead of waiting for the idle timeout.
    func testRequestAndFINArrivingTogetherAreAnsweredAndClosed() throws {
        let server = try makeServer { $0.idleTimeout = 30; $0.eventLoopThreads = 1 }
        let port = server.boundPort
        // Long pipelined runs keep the only loop thread busy most of the time.
        final class Flag: @unchecked Sendable { let lock = NSLock(); var stop = false
            var isSet: Bool { lock.lock(); defer { lock.unlock() }; return stop } }
        let flag = Flag()
        let busy = try HTTPClient(port: port, timeout: 10)
        let batch = String(repeating: "GET /now HTTP/1.1\r\nHost: x\r\n\r\n", count: 2000)
        let done = DispatchSemaphore(value: 0)
        Thread {
            while !flag.isSet {
                let sender = Thread { try? busy.send(batch) }
                sender.start()
                for _ in 0..<2000 { guard (try? busy.readResponse()) != nil else { done.signal(); return } }
            }
            done.signal()
        }.start()
        defer { flag.lock.lock(); flag.stop = true; flag.lock.unlock(); done.wait() }
        for i in 0..<20 {
            // A generous read deadline: the single loop is kept busy on purpose, and in a debug build an
            // answer can take seconds behind the flood. A FIN that went unseen would still fail the
            // test: the connection would then stay open until the 30 s idle timeout.
            let c = try HTTPClient(port: port, timeout: 12)
            usleep(30_000)   // the server has read the (empty) socket; what follows comes as a new edge
            try c.send("GET /now?n=\(i) HTTP/1.1\r\nHost: x\r\n\r\n")
            Glibc.shutdown(c.fd, Int32(SHUT_WR))
            XCTAssertEqual(try c.readResponse().text, "now \(i)")
            XCTAssertTrue(c.isClosedByPeer(), "connection \(i) was not closed after the client's FIN")
        }
    }

    /// Slow-loris clients that each stop in the middle of a head all get 408 on time, while a
    /// client on the same loops is answered meanwhile.
    func testSlowLorisClientsTimeOutWhileOthersAreServed() throws {
        let server = try makeServer { $0.headerTimeout = 1; $0.eventLoopThreads = 2 }
        let loris = try (0..<20).map { _ in try HTTPClient(port: server.boundPort, timeout: 10) }
        for c in loris { try c.send("GET /hello HTTP/1.1\r\nHost: x\r\nX-Slow: a") }
        let started = Date()
        let d = try HTTPClient(port: server.boundPort, timeout: 10)
        for _ in 0..<20 {
            try d.send("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
            XCTAssertEqual(try d.readResponse().text, "hello")
        }
        XCTAssertLessThan(Date().timeIntervalSince(started), 1, "the other client waited for the slow ones")
        for c in loris {
            let r = try c.readResponse()
            XCTAssertEqual(r.status, 408)
        }
        XCTAssertLessThan(Date().timeIntervalSince(started), 5)
    }

    /// Over TLS, where OpenSSL can hold decrypted input the socket no longer shows: pipelined
    /// requests in one write are all answered, and a large response reaches a slow reader whole.
    func testTLSPipeliningAndLargeResponse() throws {
        let tls = try TLSConfiguration.generateSelfSigned(directory: spool)
        let server = try makeServer { $0.tls = tls }
        let path = spool + "/pattern.bin"
        let content = (0..<(3 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 9) }
        FileManager.default.createFile(atPath: path, contents: Data(content))
        recorder.servedFile = path
        let c = try HTTPClient(port: server.boundPort, timeout: 10, receiveBufferSize: 16384, layer: TLSClientLayer.handshake)
        var text = ""
        for j in 0..<400 { text += "GET /now?n=\(j) HTTP/1.1\r\nHost: x\r\n\r\n" }
        try c.send(text)
        for j in 0..<400 { XCTAssertEqual(try c.readResponse().text, "now \(j)") }
        try c.send("GET /file HTTP/1.1\r\nHost: x\r\n\r\n")
        usleep(300_000)
        let r = try c.readResponse()
        XCTAssertEqual(r.status, 200)
        XCTAssertTrue(r.body == content, "the body differs from the file")
        try c.send("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        XCTAssertEqual(try c.readResponse().text, "hello")
    }

    /// Each server's loop threads end with its shutdown (tests and restarts start many servers).
    func testShutdownEndsTheLoopThreads() throws {
        func loopThreads() -> Int {
            let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []
            return tasks.filter {
                ((try? String(contentsOfFile: "/proc/self/task/\($0)/comm", encoding: .utf8)) ?? "").hasPrefix("stylist-loop-")
            }.count
        }
        let before = loopThreads()
        var config = HTTPServerConfiguration()
        config.host = "127.0.0.1"
        config.port = 0
        config.spoolDirectory = spool
        config.eventLoopThreads = 3
        let server = HTTPServer(configuration: config, responder: TestResponder(recorder: recorder), logger: .init(label: "test"))
        try server.start()
        XCTAssertTrue(eventually({ loopThreads() == before + 3 }), "\(loopThreads() - before) loop threads started")
        let c = try HTTPClient(port: server.boundPort, timeout: 10)
        try c.send("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        XCTAssertEqual(try c.readResponse().text, "hello")
        server.shutdown(grace: 1)
        XCTAssertTrue(c.isClosedByPeer())
        XCTAssertTrue(eventually({ loopThreads() == before }), "\(loopThreads() - before) loop threads left")
    }
}
