#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Logging
import XCTest
import HTTPCore
import TestSupport

/// The protocol as clients see it: keep-alive, pipelining, bodies, streams, files, TLS.
final class ServerTests: ServerTestCase {
    func testKeepAliveServesSeveralRequestsOnOneConnection() throws {
        let server = try makeServer()
        let c = try HTTPClient(port: server.boundPort, timeout: 10)
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
        let c = try HTTPClient(port: server.boundPort, timeout: 10)
        try c.send("GET /slow?ms=300&n=1 HTTP/1.1\r\nHost: x\r\n\r\n"
                   + "GET /slow?ms=0&n=2 HTTP/1.1\r\nHost: x\r\n\r\n"
                   + "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
                   + "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        XCTAssertEqual(try c.readResponse().text, "slow 1")
        XCTAssertEqual(try c.readResponse().text, "slow 2")
        XCTAssertEqual(try c.readResponse().text, "abc")
        XCTAssertEqual(try c.readResponse().text, "hello")
    }

    /// Answers given at once on the connection's queue keep their place among pipelined answers
    /// that take a task, and HEAD drops their body as any other.
    func testImmediateAnswersKeepPipelinedOrder() throws {
        let server = try makeServer()
        let c = try HTTPClient(port: server.boundPort, timeout: 10)
        try c.send("GET /slow?ms=200&n=1 HTTP/1.1\r\nHost: x\r\n\r\n"
                   + "GET /now?n=2 HTTP/1.1\r\nHost: x\r\n\r\n"
                   + "GET /slow?ms=0&n=3 HTTP/1.1\r\nHost: x\r\n\r\n"
                   + "GET /now?n=4 HTTP/1.1\r\nHost: x\r\n\r\n"
                   + "HEAD /now?n=5 HTTP/1.1\r\nHost: x\r\n\r\n")
        XCTAssertEqual(try c.readResponse().text, "slow 1")
        let immediate = try c.readResponse()
        XCTAssertEqual(immediate.text, "now 2")
        XCTAssertEqual(immediate.headers["X-Answered"], "immediately")
        XCTAssertEqual(immediate.headers["Content-Length"], "5")
        XCTAssertNotNil(immediate.headers["Date"])
        XCTAssertEqual(try c.readResponse().text, "slow 3")
        XCTAssertEqual(try c.readResponse().text, "now 4")
        let head = try c.readResponse(forHEAD: true)
        XCTAssertEqual(head.headers["Content-Length"], "5")
        try c.send("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        XCTAssertEqual(try c.readResponse().text, "hello", "the HEAD answer must carry no body bytes")
    }

    /// The server owns the framing and `Connection` fields, drops names that are not tokens, and
    /// turns line breaks in values into spaces, so a header value cannot add a header.
    func testResponseHeadersCannotBreakTheHeaderBlock() throws {
        let server = try makeServer()
        let c = try HTTPClient(port: server.boundPort, timeout: 10)
        try c.send("GET /headers HTTP/1.1\r\nHost: x\r\n\r\n")
        let r = try c.readResponse()
        XCTAssertEqual(r.text, "ok")
        XCTAssertEqual(r.headers["X-Split"], "a  Set-Cookie: evil=1")
        XCTAssertNil(r.headers["Set-Cookie"])
        XCTAssertNil(r.headers["Bad Name"])
        XCTAssertEqual(r.headers.values("Content-Length"), ["2"])
        XCTAssertNil(r.headers["Connection"])
        XCTAssertEqual(r.headers.values("Date"), ["Thu, 01 Jan 1970 00:00:00 GMT"])
    }

    func testChunkedUpload() throws {
        let server = try makeServer()
        let c = try HTTPClient(port: server.boundPort, timeout: 10)
        try c.send("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n")
        usleep(50_000)
        try c.send("6\r\n world\r\n0\r\nX-Checksum: 1\r\n\r\n")
        let r = try c.readResponse()
        XCTAssertEqual(r.status, 200)
        XCTAssertEqual(r.text, "hello world")
        XCTAssertEqual(r.headers["X-Body-Kind"], "memory")
    }

    /// `100 Continue` comes before any byte of the body is sent (the client waits for it), then
    /// the large body goes to a spool file.
    func testExpectContinueIsAnsweredBeforeTheBodyAndLargeBodyIsSpooled() throws {
        let server = try makeServer()
        let c = try HTTPClient(port: server.boundPort, timeout: 10)
        let body = (0..<(2 * 1024 * 1024)).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        try c.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: \(body.count)\r\nExpect: 100-continue\r\n\r\n")
        let (status, _) = try c.readHead()
        XCTAssertEqual(status, 100)
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
        let c = try HTTPClient(port: server.boundPort, timeout: 10)
        try c.send(Array("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: \(body.count)\r\n\r\n".utf8) + body)
        let r = try c.readResponse()
        XCTAssertEqual(r.headers["X-Body-Kind"], "file")
        XCTAssertEqual(r.headers["X-Length"], "\(body.count)")
        XCTAssertEqual(r.body.count, body.count)
        XCTAssertTrue(eventually { self.spoolContents().isEmpty }, "\(spoolContents())")
    }

    func testPreflightRefusalSkipsContinueAndCloses() throws {
        let server = try makeServer()
        let c = try HTTPClient(port: server.boundPort, timeout: 10)
        try c.send("POST /refuse HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\nExpect: 100-continue\r\n\r\n")
        let r = try c.readResponse(allowInterim: true)
        XCTAssertEqual(r.status, 401)
        XCTAssertEqual(r.headers["Content-Type"], "application/problem+json")
        XCTAssertEqual(r.headers["Connection"], "close")
        XCTAssertTrue(c.isClosedByPeer())
        // Without a body the connection stays usable.
        let d = try HTTPClient(port: server.boundPort, timeout: 10)
        try d.send("GET /refuse HTTP/1.1\r\nHost: x\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        XCTAssertEqual(try d.readResponse().status, 401)
        XCTAssertEqual(try d.readResponse().text, "hello")
    }

    func testHEADHasTheSameHeadersAndNoBody() throws {
        let server = try makeServer()
        let c = try HTTPClient(port: server.boundPort, timeout: 10)
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
        let c = try HTTPClient(port: server.boundPort, timeout: 10)
        try c.send("GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        let r = try c.readResponse()
        XCTAssertEqual(r.headers["Connection"], "close")
        XCTAssertTrue(c.isClosedByPeer())

        let d = try HTTPClient(port: server.boundPort, timeout: 10)
        try d.send("GET /hello HTTP/1.0\r\n\r\n")
        let r10 = try d.readResponse()
        XCTAssertEqual(r10.status, 200)
        XCTAssertEqual(r10.headers["Connection"], "close")
        XCTAssertTrue(d.isClosedByPeer())

        let e = try HTTPClient(port: server.boundPort, timeout: 10)
        try e.send("GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        XCTAssertEqual(try e.readResponse().headers["Connection"], "keep-alive")
        try e.send("GET /hello HTTP/1.0\r\n\r\n")
        XCTAssertEqual(try e.readResponse().text, "hello")
        XCTAssertTrue(e.isClosedByPeer())
    }

    func testStreamDeliversChunksAsTheyAreProduced() throws {
        let server = try makeServer()
        let c = try HTTPClient(port: server.boundPort, timeout: 10)
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
        let c = try HTTPClient(port: server.boundPort, timeout: 10)
        try c.send("GET /file HTTP/1.1\r\nHost: x\r\n\r\nGET /nocontent HTTP/1.1\r\nHost: x\r\n\r\n")
        let r = try c.readResponse()
        XCTAssertEqual(r.headers["Content-Length"], "\(data.count)")
        XCTAssertEqual(r.body, data)
        let nc = try c.readResponse()
        XCTAssertEqual(nc.status, 204)
        XCTAssertNil(nc.headers["Content-Length"])
        XCTAssertTrue(FileManager.default.fileExists(atPath: path), "response files are not deleted")
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
        let c = try HTTPClient(port: server.boundPort, timeout: 10, layer: TLSClientLayer.handshake)
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

    /// curl sends `Expect: 100-continue` for uploads and, without an answer, waits a second before
    /// sending the body anyway. The server answers `100 Continue` at once: curl's trace shows the
    /// interim answer received before the first byte of the body was sent, which a wait cannot produce.
    func testCurlMultipartUploadDoesNotWaitForContinue() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/curl") else { throw XCTSkip("curl not installed") }
        let server = try makeServer()
        let upload = spool + "/upload.bin"
        let tracePath = spool + "/curl-trace.txt"
        FileManager.default.createFile(atPath: upload, contents: Data(count: 2 * 1024 * 1024))
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        process.arguments = ["-sS", "--trace-ascii", tracePath, "-F", "file=@\(upload)", "-F", "alpha=0.5",
                             "http://127.0.0.1:\(server.boundPort)/form"]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        XCTAssertEqual(output, "file=upload.bin:2097152,alpha=-:3")
        let trace = try String(contentsOfFile: tracePath, encoding: .utf8).split(separator: "\n")
        XCTAssertNotNil(trace.firstIndex { $0.lowercased().contains("expect: 100-continue") }, "curl did not ask for 100 Continue")
        let interim = try XCTUnwrap(trace.firstIndex { $0.contains("HTTP/1.1 100 ") }, "no 100 Continue reached curl")
        let firstBodyByte = try XCTUnwrap(trace.firstIndex { $0.hasPrefix("=> Send data") }, "curl sent no body")
        XCTAssertLessThan(interim, firstBodyByte, "curl sent the body before the 100 Continue arrived")
    }

    func testManyPipelinedRequestsInOneWrite() throws {
        let server = try makeServer()
        let c = try HTTPClient(port: server.boundPort, timeout: 10)
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
                let c = try HTTPClient(port: port, timeout: 10)
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
        let c = try HTTPClient(port: server.boundPort, timeout: 10)
        try c.send("GET /watched HTTP/1.1\r\nHost: x\r\n\r\n")
        _ = try c.readHead()
        XCTAssertNotNil(try c.readChunk())
        c.close()
        XCTAssertTrue(eventually { self.recorder.spoolPaths.contains("terminated") }, "onTermination not called")
        XCTAssertTrue(eventually { server.connectionCount == 0 })
    }

    func testAbandonedUploadLeavesNoSpoolFile() throws {
        let server = try makeServer()
        let c = try HTTPClient(port: server.boundPort, timeout: 10)
        try c.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: \(3 << 20)\r\n\r\n")
        try c.send([UInt8](repeating: 1, count: 2 << 20))
        XCTAssertTrue(eventually { !self.spoolContents().isEmpty })
        c.close()
        XCTAssertTrue(eventually { self.spoolContents().isEmpty }, "\(spoolContents())")
        XCTAssertTrue(eventually { server.connectionCount == 0 })
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
        let c = try HTTPClient(port: server.boundPort, timeout: 10)
        try c.send(Array("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: \(body.count)\r\n\r\n".utf8) + body)
        XCTAssertEqual(try c.readResponse().headers["X-Body-Kind"], "file")
    }

    func testHalfClosedClientGetsAllPipelinedResponses() throws {
        let server = try makeServer()
        let c = try HTTPClient(port: server.boundPort, timeout: 10)
        try c.send("GET /slow?ms=100&n=1 HTTP/1.1\r\nHost: x\r\n\r\nGET /slow?n=2 HTTP/1.1\r\nHost: x\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        Glibc.shutdown(c.fd, Int32(SHUT_WR))
        XCTAssertEqual(try c.readResponse().text, "slow 1")
        XCTAssertEqual(try c.readResponse().text, "slow 2")
        XCTAssertEqual(try c.readResponse().text, "hello")
        XCTAssertTrue(c.isClosedByPeer())
    }
}
