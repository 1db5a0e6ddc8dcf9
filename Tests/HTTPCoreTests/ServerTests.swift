#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Logging
import XCTest
import HTTPCore

/// Shared state between a test and its responder.
final class Recorder: @unchecked Sendable {
    private let lock = NSLock()
    private var _spoolPaths: [String] = []
    private var gateOpen = false
    private var gateWaiters: [CheckedContinuation<Void, Never>] = []
    var servedFile = ""

    var spoolPaths: [String] { lock.lock(); defer { lock.unlock() }; return _spoolPaths }
    func record(_ path: String) { lock.lock(); _spoolPaths.append(path); lock.unlock() }

    func waitGate() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            lock.lock()
            if gateOpen { lock.unlock(); c.resume() } else { gateWaiters.append(c); lock.unlock() }
        }
    }

    func openGate() {
        lock.lock()
        gateOpen = true
        let waiters = gateWaiters
        gateWaiters = []
        lock.unlock()
        waiters.forEach { $0.resume() }
    }
}

struct TestResponder: HTTPResponder {
    let recorder: Recorder

    func preflight(_ head: HTTPRequestHead) -> HTTPResponse? {
        if head.path == "/refuse" { return .problem(status: 401, title: "Unauthorized", detail: "Missing API key.") }
        return nil
    }

    func serverRejected(status: Int, detail: String, head: HTTPRequestHead?, remoteAddress: String) {
        recorder.record("rejected \(status) \(head?.path ?? "-")")
    }

    func text(_ s: String, _ extra: HTTPHeaders = [:]) -> HTTPResponse {
        var h = extra
        h["Content-Type"] = "text/plain"
        return HTTPResponse(status: 200, headers: h, body: .bytes(Array(s.utf8)))
    }

    func respond(to request: HTTPRequest) async -> HTTPResponse {
        switch request.head.path {
        case "/hello":
            return text("hello")
        case "/slow":
            let ms = UInt64(request.head.queryValue("ms") ?? "0") ?? 0
            try? await Task.sleep(nanoseconds: ms * 1_000_000)
            return text("slow \(request.head.queryValue("n") ?? "")")
        case "/echo":
            switch request.body {
            case .empty:
                return text("", ["X-Body-Kind": "empty"])
            case .bytes(let b):
                return HTTPResponse(status: 200, headers: ["X-Body-Kind": "memory"], body: .bytes(b))
            case .file(let path, let length):
                recorder.record(path)
                let data = (try? request.body.readAll()) ?? []
                return HTTPResponse(status: 200, headers: ["X-Body-Kind": "file", "X-Length": "\(length)"], body: .bytes(data))
            }
        case "/sse":
            let (stream, continuation) = AsyncStream.makeStream(of: [UInt8].self)
            let recorder = self.recorder
            Task {
                continuation.yield(Array("data: one\n\n".utf8))
                await recorder.waitGate()
                continuation.yield([])
                continuation.yield(Array("data: two\n\n".utf8))
                continuation.finish()
            }
            return HTTPResponse(status: 200, headers: ["Content-Type": "text/event-stream"], body: .stream(stream))
        case "/file":
            return HTTPResponse(status: 200, headers: ["Content-Type": "application/octet-stream"], body: .file(path: recorder.servedFile))
        case "/form":
            do {
                let parts = try MultipartParser.parse(body: request.body, contentType: request.head.headers["Content-Type"] ?? "",
                                                      maxPartBytes: 10 << 20, maxParts: 10, spoolDirectory: NSTemporaryDirectory())
                defer { MultipartParser.removeSpoolFiles(parts) }
                return text(parts.map { "\($0.name)=\($0.filename ?? "-"):\($0.body.count)" }.joined(separator: ","))
            } catch {
                return .problem(status: 400, title: "Bad Request", detail: "\(error)")
            }
        case "/watched":
            let (stream, continuation) = AsyncStream.makeStream(of: [UInt8].self)
            let recorder = self.recorder
            continuation.onTermination = { _ in recorder.record("terminated") }
            continuation.yield(Array("data: first\n\n".utf8))
            return HTTPResponse(status: 200, headers: ["Content-Type": "text/event-stream"], body: .stream(stream))
        case "/nocontent":
            return HTTPResponse(status: 204)
        default:
            return .problem(status: 404, title: "Not Found", detail: "No route for \(request.head.path).")
        }
    }
}

final class ServerTests: XCTestCase {
    var spool: String!
    var recorder: Recorder!

    override func setUpWithError() throws {
        spool = NSTemporaryDirectory() + "httpcore-srv-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: spool, withIntermediateDirectories: true)
        recorder = Recorder()
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: spool)
    }

    func makeServer(_ configure: (inout HTTPServerConfiguration) -> Void = { _ in }) throws -> HTTPServer {
        var config = HTTPServerConfiguration()
        config.host = "127.0.0.1"
        config.port = 0
        config.spoolDirectory = spool
        configure(&config)
        var logger = Logger(label: "test")
        logger.logLevel = .warning
        let server = HTTPServer(configuration: config, responder: TestResponder(recorder: recorder), logger: logger)
        try server.start()
        addTeardownBlock { server.shutdown(grace: 1) }
        return server
    }

    func spoolContents() -> [String] { (try? FileManager.default.contentsOfDirectory(atPath: spool)) ?? [] }

    /// Waits (generously) for a condition the server reaches just after the client has its response.
    func eventually(_ condition: () -> Bool, timeout: Double = 5) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if condition() { return true }
            usleep(10_000)
        }
        return condition()
    }

    func testKeepAliveServesSeveralRequestsOnOneConnection() throws {
        let server = try makeServer()
        let c = try RawClient(port: server.boundPort)
        for _ in 0..<3 {
            try c.send("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
            let r = try c.readResponse()
            XCTAssertEqual(r.status, 200)
            XCTAssertEqual(r.text, "hello")
            XCTAssertEqual(r.headers["Content-Length"], "5")
            XCTAssertNotNil(r.headers["Date"])
            XCTAssertNil(r.headers["Connection"])
        }
        XCTAssertEqual(server.connectionCount, 1)
    }

    func testPipelinedRequestsAreAnsweredInOrder() throws {
        let server = try makeServer()
        let c = try RawClient(port: server.boundPort)
        try c.send("GET /slow?ms=300&n=1 HTTP/1.1\r\nHost: x\r\n\r\n"
                   + "GET /slow?ms=0&n=2 HTTP/1.1\r\nHost: x\r\n\r\n"
                   + "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
                   + "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        XCTAssertEqual(try c.readResponse().text, "slow 1")
        XCTAssertEqual(try c.readResponse().text, "slow 2")
        XCTAssertEqual(try c.readResponse().text, "abc")
        XCTAssertEqual(try c.readResponse().text, "hello")
    }

    func testChunkedUpload() throws {
        let server = try makeServer()
        let c = try RawClient(port: server.boundPort)
        try c.send("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n")
        usleep(50_000)
        try c.send("6\r\n world\r\n0\r\nX-Checksum: 1\r\n\r\n")
        let r = try c.readResponse()
        XCTAssertEqual(r.status, 200)
        XCTAssertEqual(r.text, "hello world")
        XCTAssertEqual(r.headers["X-Body-Kind"], "memory")
    }

    func testExpectContinueIsAnsweredQuicklyAndLargeBodyIsSpooled() throws {
        let server = try makeServer()
        let c = try RawClient(port: server.boundPort)
        let body = (0..<(2 * 1024 * 1024)).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let start = Date()
        try c.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: \(body.count)\r\nExpect: 100-continue\r\n\r\n")
        let (status, _) = try c.readHead()
        let elapsed = Date().timeIntervalSince(start)
        XCTAssertEqual(status, 100)
        XCTAssertLessThan(elapsed, 0.5)
        try c.send(body)
        let r = try c.readResponse()
        XCTAssertEqual(r.status, 200)
        XCTAssertEqual(r.headers["X-Body-Kind"], "file")
        XCTAssertEqual(r.body, body)
        let paths = recorder.spoolPaths
        XCTAssertEqual(paths.count, 1)
        XCTAssertTrue(paths[0].hasPrefix(spool))
        XCTAssertTrue(eventually { !FileManager.default.fileExists(atPath: paths[0]) }, "spool file not removed after the response")
    }

    func testLargeBodyWithoutExpectIsSpooledAndRemoved() throws {
        let server = try makeServer()
        let body = [UInt8](repeating: 0x61, count: 3 * 1024 * 1024 + 17)
        let c = try RawClient(port: server.boundPort)
        try c.send(Array("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: \(body.count)\r\n\r\n".utf8) + body)
        let r = try c.readResponse()
        XCTAssertEqual(r.headers["X-Body-Kind"], "file")
        XCTAssertEqual(r.headers["X-Length"], "\(body.count)")
        XCTAssertEqual(r.body.count, body.count)
        XCTAssertTrue(eventually { self.spoolContents().isEmpty }, "\(spoolContents())")
    }

    func testPreflightRefusalSkipsContinueAndCloses() throws {
        let server = try makeServer()
        let c = try RawClient(port: server.boundPort)
        try c.send("POST /refuse HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\nExpect: 100-continue\r\n\r\n")
        let r = try c.readResponse(allowInterim: true)
        XCTAssertEqual(r.status, 401)
        XCTAssertEqual(r.headers["Content-Type"], "application/problem+json")
        XCTAssertEqual(r.headers["Connection"], "close")
        XCTAssertTrue(c.isClosedByPeer())
        // Without a body the connection stays usable.
        let d = try RawClient(port: server.boundPort)
        try d.send("GET /refuse HTTP/1.1\r\nHost: x\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        XCTAssertEqual(try d.readResponse().status, 401)
        XCTAssertEqual(try d.readResponse().text, "hello")
    }

    func testHeadersTooLargeIs431() throws {
        let server = try makeServer()
        let c = try RawClient(port: server.boundPort)
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
        let c = try RawClient(port: server.boundPort)
        try c.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: \(30 * 1024 * 1024)\r\n\r\n")
        let r = try c.readResponse()
        XCTAssertEqual(r.status, 413)
        XCTAssertEqual(r.headers["Connection"], "close")
        XCTAssertTrue(c.isClosedByPeer())
    }

    func testChunkedBodyOverLimitIs413() throws {
        let server = try makeServer { $0.maxBodyBytes = 1000 }
        let c = try RawClient(port: server.boundPort)
        try c.send("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n400\r\n")
        XCTAssertEqual(try c.readResponse().status, 413)
    }

    func testMissingLengthIs411AndSmugglingIs400() throws {
        let server = try makeServer()
        XCTAssertEqual(try RawClient.request(port: server.boundPort, "POST /echo HTTP/1.1\r\nHost: x\r\n\r\n").status, 411)
        let c = try RawClient(port: server.boundPort)
        try c.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        let r = try c.readResponse()
        XCTAssertEqual(r.status, 400)
        XCTAssertEqual(r.headers["Connection"], "close")
        XCTAssertTrue(c.isClosedByPeer(), "smuggled request must not be answered")
        XCTAssertEqual(try RawClient.request(port: server.boundPort, "GET / HTTP/3.0\r\nHost: x\r\n\r\n").status, 505)
    }

    func testStalledBodyIs408() throws {
        let server = try makeServer { $0.bodyTimeout = 0.5 }
        let c = try RawClient(port: server.boundPort)
        try c.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
        let r = try c.readResponse()
        XCTAssertEqual(r.status, 408)
        XCTAssertEqual(recorder.spoolPaths, ["rejected 408 /echo"])
        XCTAssertEqual(r.headers["Connection"], "close")
        XCTAssertTrue(c.isClosedByPeer())
    }

    func testStalledHeadIs408AndIdleKeepAliveClosesSilently() throws {
        let server = try makeServer { $0.headerTimeout = 0.5; $0.idleTimeout = 0.5 }
        let c = try RawClient(port: server.boundPort)
        try c.send("GET /hello HTTP/1.1\r\nHo")
        XCTAssertEqual(try c.readResponse().status, 408)
        let d = try RawClient(port: server.boundPort)
        try d.send("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        XCTAssertEqual(try d.readResponse().status, 200)
        XCTAssertTrue(d.isClosedByPeer(), "idle keep-alive connection should be closed without a response")
    }

    func testHEADHasTheSameHeadersAndNoBody() throws {
        let server = try makeServer()
        let c = try RawClient(port: server.boundPort)
        try c.send("HEAD /hello HTTP/1.1\r\nHost: x\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        let head = try c.readResponse(forHEAD: true)
        XCTAssertEqual(head.status, 200)
        XCTAssertEqual(head.headers["Content-Length"], "5")
        XCTAssertEqual(head.headers["Content-Type"], "text/plain")
        let get = try c.readResponse()
        XCTAssertEqual(get.text, "hello", "HEAD must not have sent body bytes")
    }

    func testConnectionCloseAndHTTP10() throws {
        let server = try makeServer()
        let c = try RawClient(port: server.boundPort)
        try c.send("GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        let r = try c.readResponse()
        XCTAssertEqual(r.headers["Connection"], "close")
        XCTAssertTrue(c.isClosedByPeer())

        let d = try RawClient(port: server.boundPort)
        try d.send("GET /hello HTTP/1.0\r\n\r\n")
        let r10 = try d.readResponse()
        XCTAssertEqual(r10.status, 200)
        XCTAssertEqual(r10.headers["Connection"], "close")
        XCTAssertTrue(d.isClosedByPeer())

        let e = try RawClient(port: server.boundPort)
        try e.send("GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        XCTAssertEqual(try e.readResponse().headers["Connection"], "keep-alive")
        try e.send("GET /hello HTTP/1.0\r\n\r\n")
        XCTAssertEqual(try e.readResponse().text, "hello")
        XCTAssertTrue(e.isClosedByPeer())
    }

    func testStreamDeliversChunksAsTheyAreProduced() throws {
        let server = try makeServer()
        let c = try RawClient(port: server.boundPort)
        try c.send("GET /sse HTTP/1.1\r\nHost: x\r\n\r\n")
        let (status, headers) = try c.readHead()
        XCTAssertEqual(status, 200)
        XCTAssertEqual(headers["Transfer-Encoding"], "chunked")
        XCTAssertNil(headers["Content-Length"])
        XCTAssertEqual(headers["Content-Type"], "text/event-stream")
        // The second chunk is only produced after we have seen the first one.
        XCTAssertEqual(try c.readChunk().map { String(decoding: $0, as: UTF8.self) }, "data: one\n\n")
        recorder.openGate()
        XCTAssertEqual(try c.readChunk().map { String(decoding: $0, as: UTF8.self) }, "data: two\n\n")
        XCTAssertNil(try c.readChunk())
        // and the connection is reusable
        try c.send("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        XCTAssertEqual(try c.readResponse().text, "hello")
    }

    func testFileResponseAnd204() throws {
        let server = try makeServer()
        let path = spool + "/served.bin"
        let data = (0..<(700 * 1024)).map { UInt8(truncatingIfNeeded: $0) }
        FileManager.default.createFile(atPath: path, contents: Data(data))
        recorder.servedFile = path
        let c = try RawClient(port: server.boundPort)
        try c.send("GET /file HTTP/1.1\r\nHost: x\r\n\r\nGET /nocontent HTTP/1.1\r\nHost: x\r\n\r\n")
        let r = try c.readResponse()
        XCTAssertEqual(r.headers["Content-Length"], "\(data.count)")
        XCTAssertEqual(r.body, data)
        let nc = try c.readResponse()
        XCTAssertEqual(nc.status, 204)
        XCTAssertNil(nc.headers["Content-Length"])
        XCTAssertTrue(FileManager.default.fileExists(atPath: path), "response files are not deleted")
    }

    /// At the connection limit an idle (or still incomplete) connection is closed to make room;
    /// only when every connection is being answered is a new one refused with 503.
    func testConnectionLimitEvictsIdleConnectionsAndAnswers503WhenAllAreBusy() throws {
        let server = try makeServer { $0.maxConnections = 1 }
        let a = try RawClient(port: server.boundPort)
        try a.send("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        XCTAssertEqual(try a.readResponse().status, 200)
        // `a` is idle (keep-alive): it makes room for `b`.
        let b = try RawClient(port: server.boundPort)
        try b.send("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        XCTAssertEqual(try b.readResponse().status, 200)
        XCTAssertTrue(a.isClosedByPeer())
        // `b` is being answered (a slow handler): `c` is refused.
        try b.send("GET /slow?ms=500 HTTP/1.1\r\nHost: x\r\n\r\n")
        Thread.sleep(forTimeInterval: 0.1)
        let c = try RawClient(port: server.boundPort)
        let r = try c.readResponse()
        XCTAssertEqual(r.status, 503)
        XCTAssertEqual(r.headers["Content-Type"], "application/problem+json")
        XCTAssertEqual(r.headers["Retry-After"], "1")
        XCTAssertTrue(c.isClosedByPeer())
        XCTAssertEqual(try b.readResponse().status, 200)
    }

    /// One client address cannot hold more than its share: its oldest idle or incomplete connection goes.
    func testPerAddressLimitClosesThatAddresssOldestIncompleteConnection() throws {
        let server = try makeServer { $0.maxConnectionsPerAddress = 3 }
        var slow: [RawClient] = []
        for _ in 0..<3 {
            let s = try RawClient(port: server.boundPort)
            try s.send("GET /hello HTTP/1.1\r\nHost: x\r\n")   // half a head
            slow.append(s)
            Thread.sleep(forTimeInterval: 0.02)
        }
        let d = try RawClient(port: server.boundPort)
        try d.send("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        XCTAssertEqual(try d.readResponse().status, 200)
        XCTAssertTrue(slow[0].isClosedByPeer(), "the oldest incomplete connection was kept")
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

    func testGracefulShutdownFinishesInFlightRequests() throws {
        let server = try makeServer()
        let c = try RawClient(port: server.boundPort)
        try c.send("GET /slow?ms=400&n=9 HTTP/1.1\r\nHost: x\r\n\r\n")
        usleep(100_000)
        let done = expectation(description: "shutdown returned")
        DispatchQueue.global().async {
            server.shutdown(grace: 10)
            done.fulfill()
        }
        let r = try c.readResponse()
        XCTAssertEqual(r.text, "slow 9")
        XCTAssertEqual(r.headers["Connection"], "close")
        wait(for: [done], timeout: 10)
        XCTAssertThrowsError(try RawClient(port: server.boundPort), "listener should be closed")
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
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(server.boundPort).bigEndian)
        inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr)
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var small: Int32 = 4096
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, socklen_t(MemoryLayout<Int32>.size))
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        XCTAssertEqual(rc, 0)
        let request = Array("GET /file HTTP/1.1\r\nHost: x\r\n\r\n".utf8)
        _ = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
        let t0 = Date()
        var buffer = [UInt8](repeating: 0, count: 2048)
        var dropped: Double?
        while Date().timeIntervalSince(t0) < 20 {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            if dropped == nil && server.connectionCount == 0 { dropped = Date().timeIntervalSince(t0); break }
            Thread.sleep(forTimeInterval: 0.02)   // about 100 KB/s: 32 MB would take five minutes
        }
        let at = try XCTUnwrap(dropped, "the slow reader kept its connection for 20 s")
        XCTAssertLessThan(at, 10)
    }

    /// TLS 1.2 offers forward-secret AEAD suites only: a CBC-SHA1 suite is refused, a GCM one works.
    func testTLSCipherListHasNoCBCSHA1Suites() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/openssl") else { throw XCTSkip("no openssl binary") }
        let tls = try TLSConfiguration.generateSelfSigned(directory: spool)
        let server = try makeServer { $0.tls = tls }
        func handshake(_ cipher: String) throws -> String {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
            p.arguments = ["s_client", "-connect", "127.0.0.1:\(server.boundPort)", "-tls1_2", "-cipher", cipher]
            let out = Pipe()
            p.standardOutput = out
            p.standardError = out
            p.standardInput = FileHandle.nullDevice   // EOF at once: s_client leaves after the handshake
            try p.run()
            let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            p.waitUntilExit()
            return text
        }
        XCTAssertTrue(try handshake("ECDHE-ECDSA-AES128-GCM-SHA256").contains("Cipher is ECDHE-ECDSA-AES128-GCM-SHA256"))
        for weak in ["ECDHE-ECDSA-AES128-SHA", "ECDHE-ECDSA-AES256-SHA", "ECDHE-ECDSA-AES128-SHA256"] {
            let text = try handshake(weak)
            XCTAssertFalse(text.contains("Cipher is \(weak)"), "\(weak) was accepted:\n\(text)")
        }
    }

    func testTLSRoundTrip() throws {
        let tls = try TLSConfiguration.generateSelfSigned(directory: spool)
        let server = try makeServer { $0.tls = tls }
        let c = try RawClient(port: server.boundPort, tls: true)
        for _ in 0..<2 {
            try c.send("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
            XCTAssertEqual(try c.readResponse().text, "hello")
        }
        let body = [UInt8](repeating: 0x42, count: 1_500_000)
        try c.send(Array("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: \(body.count)\r\n\r\n".utf8) + body)
        let r = try c.readResponse()
        XCTAssertEqual(r.body.count, body.count)
        XCTAssertEqual(r.headers["X-Body-Kind"], "file")
    }

    /// curl sends `Expect: 100-continue` for uploads and waits a second without an answer.
    func testCurlMultipartUploadDoesNotWaitForContinue() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/curl") else { throw XCTSkip("curl not installed") }
        let server = try makeServer()
        let upload = spool + "/upload.bin"
        FileManager.default.createFile(atPath: upload, contents: Data(count: 2 * 1024 * 1024))
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        process.arguments = ["-sS", "-F", "file=@\(upload)", "-F", "alpha=0.5", "-w", "\n%{time_total}",
                             "http://127.0.0.1:\(server.boundPort)/form"]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        let lines = output.split(separator: "\n")
        XCTAssertEqual(lines.first.map(String.init), "file=upload.bin:2097152,alpha=-:3")
        let seconds = Double(lines.last ?? "") ?? 99
        print("curl -F 2 MiB upload: time_total \(seconds) s")
        XCTAssertLessThan(seconds, 0.9, "curl waited for 100 Continue")
    }

    func testManyPipelinedRequestsInOneWrite() throws {
        let server = try makeServer()
        let c = try RawClient(port: server.boundPort)
        let count = 2000
        var text = ""
        for i in 0..<count { text += i % 2 == 0 ? "GET /refuse HTTP/1.1\r\nHost: x\r\n\r\n" : "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n" }
        let payload = text
        let sender = Thread { try? c.send(payload) }
        sender.start()
        for i in 0..<count {
            let r = try c.readResponse()
            XCTAssertEqual(r.status, i % 2 == 0 ? 401 : 200)
        }
    }

    func testConcurrentUploads() throws {
        let server = try makeServer()
        let port = server.boundPort
        let clients = 20
        let size = 2 * 1024 * 1024 + 3
        let failures = NSLock()
        var errors: [String] = []
        DispatchQueue.concurrentPerform(iterations: clients) { i in
            do {
                let body = [UInt8](repeating: UInt8(i), count: size)
                let c = try RawClient(port: port)
                try c.send(Array("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: \(size)\r\n\r\n".utf8))
                try c.send(body)
                let r = try c.readResponse()
                if r.body != body { throw ClientError("client \(i): body mismatch (\(r.body.count) bytes)") }
            } catch {
                failures.lock(); errors.append("\(error)"); failures.unlock()
            }
        }
        XCTAssertEqual(errors, [])
        XCTAssertTrue(eventually { self.spoolContents().isEmpty }, "\(spoolContents())")
    }

    func testClientLeavingAnEventStreamEndsTheStream() throws {
        let server = try makeServer()
        let c = try RawClient(port: server.boundPort)
        try c.send("GET /watched HTTP/1.1\r\nHost: x\r\n\r\n")
        _ = try c.readHead()
        XCTAssertNotNil(try c.readChunk())
        c.close()
        XCTAssertTrue(eventually { self.recorder.spoolPaths.contains("terminated") }, "onTermination not called")
        XCTAssertTrue(eventually { server.connectionCount == 0 })
    }

    func testAbandonedUploadLeavesNoSpoolFile() throws {
        let server = try makeServer()
        let c = try RawClient(port: server.boundPort)
        try c.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: \(3 << 20)\r\n\r\n")
        try c.send([UInt8](repeating: 1, count: 2 << 20))
        XCTAssertTrue(eventually { !self.spoolContents().isEmpty })
        c.close()
        XCTAssertTrue(eventually { self.spoolContents().isEmpty }, "\(spoolContents())")
        XCTAssertTrue(eventually { server.connectionCount == 0 })
    }

    func testHeaderTimeoutIsNotResetByTrickledBytes() throws {
        let server = try makeServer { $0.headerTimeout = 0.6 }
        let c = try RawClient(port: server.boundPort)
        let start = Date()
        var got408 = false
        for byte in Array("GET /hello HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".utf8) {
            guard (try? c.send([byte])) != nil else { break }
            usleep(50_000)
            if Date().timeIntervalSince(start) > 1.5 { break }
        }
        if let r = try? c.readResponse() { got408 = r.status == 408 }
        XCTAssertTrue(got408)
        XCTAssertLessThan(Date().timeIntervalSince(start), 5)
    }

    func testStalledReaderIsDisconnected() throws {
        let server = try makeServer { $0.idleTimeout = 0.5 }
        let path = spool + "/big.bin"
        FileManager.default.createFile(atPath: path, contents: Data(count: 32 << 20))
        recorder.servedFile = path
        let c = try RawClient(port: server.boundPort)
        var size: Int32 = 4096
        setsockopt(c.fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        try c.send("GET /file HTTP/1.1\r\nHost: x\r\n\r\n")
        let (status, headers) = try c.readHead()
        XCTAssertEqual(status, 200)
        XCTAssertEqual(headers["Content-Length"], "\(32 << 20)")
        XCTAssertEqual(server.connectionCount, 1)
        // Stop reading: the server must give up on the write after the idle timeout.
        XCTAssertTrue(eventually({ server.connectionCount == 0 }, timeout: 10))
        // (Not draining the client socket here: with a 4 KiB receive window the kernel's zero-window probes make that slow.)
    }

    func testMissingSpoolDirectoryIsCreatedAndStaleFilesRemoved() throws {
        let nested = spool + "/nested/spool"
        try FileManager.default.createDirectory(atPath: nested, withIntermediateDirectories: true)
        let stale = nested + "/stylist-body-OLD123"
        FileManager.default.createFile(atPath: stale, contents: Data([1]))
        try FileManager.default.setAttributes([.modificationDate: Date().addingTimeInterval(-7200)], ofItemAtPath: stale)
        let fresh = nested + "/stylist-body-NEW123"
        FileManager.default.createFile(atPath: fresh, contents: Data([1]))
        _ = try makeServer { $0.spoolDirectory = nested }
        XCTAssertFalse(FileManager.default.fileExists(atPath: stale))
        XCTAssertTrue(FileManager.default.fileExists(atPath: fresh), "a recent file may belong to another running server")
        let created = spool + "/does/not/exist"
        let server = try makeServer { $0.spoolDirectory = created }
        let body = [UInt8](repeating: 7, count: 2 << 20)
        let c = try RawClient(port: server.boundPort)
        try c.send(Array("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: \(body.count)\r\n\r\n".utf8) + body)
        XCTAssertEqual(try c.readResponse().headers["X-Body-Kind"], "file")
    }

    func testHalfClosedClientGetsAllPipelinedResponses() throws {
        let server = try makeServer()
        let c = try RawClient(port: server.boundPort)
        try c.send("GET /slow?ms=100&n=1 HTTP/1.1\r\nHost: x\r\n\r\nGET /slow?n=2 HTTP/1.1\r\nHost: x\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        Glibc.shutdown(c.fd, Int32(SHUT_WR))
        XCTAssertEqual(try c.readResponse().text, "slow 1")
        XCTAssertEqual(try c.readResponse().text, "slow 2")
        XCTAssertEqual(try c.readResponse().text, "hello")
        XCTAssertTrue(c.isClosedByPeer())
    }
}
