import XCTest
import HTTPCore

/// Merges consecutive body events so that results of different splits compare equal.
func normalize(_ events: [HTTPParserEvent]) -> [HTTPParserEvent] {
    var out: [HTTPParserEvent] = []
    for e in events {
        if case .body(let b) = e, case .body(let a)? = out.last {
            out[out.count - 1] = .body(a + b)
        } else {
            out.append(e)
        }
    }
    return out
}

func parseAll(_ text: String, limits: HTTPParserLimits = HTTPParserLimits()) -> [HTTPParserEvent] {
    var p = HTTPRequestParser(limits: limits)
    return normalize(p.feed(Array(text.utf8)))
}

func firstError(_ text: String, limits: HTTPParserLimits = HTTPParserLimits()) -> HTTPParserError? {
    for e in parseAll(text, limits: limits) { if case .error(let err) = e { return err } }
    return nil
}

final class RequestParserTests: XCTestCase {
    let samples: [String] = [
        "GET /v1/jobs/abc%20d?wait=5&x=a+b&y=%C3%A9 HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\nX-Multi: 1\r\nX-Multi: 2\r\n\r\n",
        "POST /v1/jobs HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\nContent-Type: text/plain\r\n\r\nhello world",
        "POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5;name=value;flag\r\nhello\r\n6 ; ext=\"q\"\r\n world\r\n0\r\nX-Trailer: yes\r\nChecksum: abc\r\n\r\n",
        // pipelined: three requests in one buffer, with a leading empty line tolerated before the second
        "GET /a HTTP/1.1\r\nHost: h\r\n\r\nPUT /b HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nxyz\r\nDELETE /c HTTP/1.1\r\nHost: h\r\n\r\n",
        "GET / HTTP/1.0\r\n\r\n",
    ]

    func testEveryByteSplitGivesTheSameEvents() {
        for sample in samples {
            let bytes = Array(sample.utf8)
            let whole = parseAll(sample)
            XCTAssertFalse(whole.contains { if case .error = $0 { return true }; return false }, "\(whole)")
            for split in 0...bytes.count {
                var p = HTTPRequestParser()
                let a = p.feed(Array(bytes[..<split]))
                let b = p.feed(Array(bytes[split...]))
                XCTAssertEqual(normalize(a + b), whole, "split at \(split) of \(sample.debugDescription)")
            }
            var p = HTTPRequestParser()
            var oneByOne: [HTTPParserEvent] = []
            for byte in bytes { oneByOne += p.feed([byte]) }
            XCTAssertEqual(normalize(oneByOne), whole)
        }
    }

    func testHeadFieldsAndDecoding() throws {
        let events = parseAll(samples[0])
        XCTAssertEqual(events.count, 2)
        guard case .head(let head, let framing) = events[0] else { return XCTFail() }
        XCTAssertEqual(framing, .none)
        XCTAssertEqual(head.method, "GET")
        XCTAssertEqual(head.target, "/v1/jobs/abc%20d?wait=5&x=a+b&y=%C3%A9")
        XCTAssertEqual(head.path, "/v1/jobs/abc d")
        XCTAssertEqual(head.queryValue("wait"), "5")
        XCTAssertEqual(head.queryValue("x"), "a b")
        XCTAssertEqual(head.queryValue("y"), "é")
        XCTAssertEqual(head.version, .http1_1)
        XCTAssertEqual(head.headers["host"], "example.com")
        XCTAssertEqual(head.headers.values("x-multi"), ["1", "2"])
        XCTAssertEqual(events[1], .end)
    }

    func testChunkedWithExtensionsAndTrailers() {
        let events = parseAll(samples[2])
        guard case .head(_, let framing) = events[0] else { return XCTFail() }
        XCTAssertEqual(framing, .chunked)
        XCTAssertEqual(events[1], .body(Array("hello world".utf8)))
        XCTAssertEqual(events[2], .end)
        XCTAssertEqual(events.count, 3)
    }

    func testPipelinedRequestsInOneBuffer() {
        let events = parseAll(samples[3])
        let heads = events.compactMap { e -> String? in if case .head(let h, _) = e { return "\(h.method) \(h.path)" }; return nil }
        XCTAssertEqual(heads, ["GET /a", "PUT /b", "DELETE /c"])
        XCTAssertEqual(events.filter { $0 == .end }.count, 3)
        XCTAssertTrue(events.contains(.body(Array("xyz".utf8))))
    }

    func testSmugglingShapesAre400() {
        let shapes: [(String, String)] = [
            ("CL + TE", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"),
            ("TE + CL", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"),
            ("repeated CL same", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n"),
            ("repeated CL differing", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"),
            ("CL list", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 5\r\n\r\n"),
            ("negative CL", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n"),
            ("plus CL", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +5\r\n\r\n"),
            ("hex CL", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0x10\r\n\r\n"),
            ("empty CL", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: \r\n\r\n"),
            ("overflowing CL", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999999\r\n\r\n"),
            ("TE not ending in chunked", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"),
            ("TE chunked twice", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"),
            ("TE identity", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: identity\r\n\r\n"),
            ("TE with junk", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: xchunked\r\n\r\n"),
            ("TE in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"),
            ("space before colon", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding : chunked\r\n\r\n"),
            ("obs-fold", "GET / HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n  folded\r\n\r\n"),
            ("bare LF", "GET / HTTP/1.1\nHost: h\n\n"),
            ("bare CR", "GET / HTTP/1.1\r\nHost: h\rX: y\r\n\r\n"),
            ("two hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
            ("no host", "GET / HTTP/1.1\r\n\r\n"),
            ("NUL in value", "GET / HTTP/1.1\r\nHost: h\r\nX: a\u{0}b\r\n\r\n"),
            ("bad request line", "GET  / HTTP/1.1\r\nHost: h\r\n\r\n"),
            ("bad chunk size", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"),
            ("chunk size overflow", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n"),
            ("chunk data without CRLF", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n"),
            ("bare LF chunk line", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n"),
            ("bad escape", "GET /a%zz HTTP/1.1\r\nHost: h\r\n\r\n"),
            ("encoded dot-dot", "GET /v1/jobs/%2E%2E/%2e%2e/etc HTTP/1.1\r\nHost: h\r\n\r\n"),
            ("dot-dot", "GET /a/../b HTTP/1.1\r\nHost: h\r\n\r\n"),
            ("encoded NUL", "GET /a%00 HTTP/1.1\r\nHost: h\r\n\r\n"),
            ("relative target", "GET a/b HTTP/1.1\r\nHost: h\r\n\r\n"),
        ]
        for (name, text) in shapes {
            let error = firstError(text)
            XCTAssertEqual(error?.status, 400, "\(name): \(String(describing: error))")
        }
        // After an error the parser ignores the rest of the stream.
        var p = HTTPRequestParser()
        let events = p.feed(Array("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n".utf8))
        XCTAssertEqual(events.count, 1)
        XCTAssertTrue(p.hasFailed)
        XCTAssertEqual(p.feed(Array("GET / HTTP/1.1\r\nHost: h\r\n\r\n".utf8)), [])
    }

    func testUnknownCodingVersionAndLength() {
        XCTAssertEqual(firstError("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n")?.status, 501)
        XCTAssertEqual(firstError("GET / HTTP/2.0\r\nHost: h\r\n\r\n")?.status, 505)
        XCTAssertEqual(firstError("GET / HTTP/1.2\r\nHost: h\r\n\r\n")?.status, 505)
        XCTAssertEqual(firstError("GET / HTTP/1\r\nHost: h\r\n\r\n")?.status, 400)
        XCTAssertEqual(firstError("POST / HTTP/1.1\r\nHost: h\r\n\r\n")?.status, 411)
        XCTAssertEqual(firstError("PUT / HTTP/1.1\r\nHost: h\r\n\r\n")?.status, 411)
        XCTAssertNil(firstError("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n"))
    }

    func testLimits() {
        let limits = HTTPParserLimits(maxHeaderBytes: 1024, maxHeaderCount: 10, maxBodyBytes: 100)
        let big = "GET / HTTP/1.1\r\nHost: h\r\nX-Big: \(String(repeating: "a", count: 2000))\r\n\r\n"
        XCTAssertEqual(firstError(big, limits: limits)?.status, 431)
        // The 431 comes as soon as the limit is passed, without waiting for the end of the head.
        var p = HTTPRequestParser(limits: limits)
        let partial = p.feed(Array("GET / HTTP/1.1\r\nX: \(String(repeating: "b", count: 1100))".utf8))
        XCTAssertEqual(partial.count, 1)
        XCTAssertEqual(partial.first.flatMap { if case .error(let e) = $0 { return e.status }; return nil }, 431)
        let longTarget = "GET /\(String(repeating: "x", count: 1100)) HTTP/1.1\r\nHost: h\r\n\r\n"
        XCTAssertEqual(firstError(longTarget, limits: limits)?.status, 431)
        let many = "GET / HTTP/1.1\r\nHost: h\r\n" + (0..<10).map { "X-\($0): v\r\n" }.joined() + "\r\n"
        XCTAssertEqual(firstError(many, limits: limits)?.status, 431)
        let ten = "GET / HTTP/1.1\r\nHost: h\r\n" + (0..<9).map { "X-\($0): v\r\n" }.joined() + "\r\n"
        XCTAssertNil(firstError(ten, limits: limits))
        XCTAssertEqual(firstError("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 101\r\n\r\n", limits: limits)?.status, 413)
        XCTAssertNil(firstError("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\n", limits: limits))
        let chunked = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n40\r\n\(String(repeating: "a", count: 64))\r\n40\r\n"
        XCTAssertEqual(firstError(chunked, limits: limits)?.status, 413)
        let trailers = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: \(String(repeating: "t", count: 2000))\r\n\r\n"
        XCTAssertEqual(firstError(trailers, limits: limits)?.status, 431)
    }

    func testHTTP10AndKeepAlive() {
        guard case .head(let h, _) = parseAll("GET / HTTP/1.0\r\n\r\n")[0] else { return XCTFail() }
        XCTAssertEqual(h.version, .http1_0)
        XCTAssertFalse(h.isKeepAlive)
        guard case .head(let h2, _) = parseAll("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")[0] else { return XCTFail() }
        XCTAssertTrue(h2.isKeepAlive)
        guard case .head(let h3, _) = parseAll("GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")[0] else { return XCTFail() }
        XCTAssertFalse(h3.isKeepAlive)
        guard case .head(let h4, _) = parseAll("GET http://example.com/x?y=1 HTTP/1.1\r\nHost: example.com\r\n\r\n")[0] else { return XCTFail() }
        XCTAssertEqual(h4.path, "/x")
        XCTAssertEqual(h4.queryValue("y"), "1")
    }

    func testHeadersType() {
        var h: HTTPHeaders = ["Content-Type": "a", "X": "1"]
        h.add("x", "2")
        XCTAssertEqual(h["content-type"], "a")
        XCTAssertEqual(h.values("X"), ["1", "2"])
        h["X"] = "3"
        XCTAssertEqual(h.values("x"), ["3"])
        h.remove("CONTENT-TYPE")
        XCTAssertNil(h["Content-Type"])
        XCTAssertEqual(Array(h).map { $0.name }, ["X"])
    }

    func testProblemResponse() throws {
        let r = HTTPResponse.problem(status: 404, title: "Not Found", detail: "No job \"x\".")
        XCTAssertEqual(r.headers["Content-Type"], "application/problem+json")
        guard case .bytes(let b) = r.body else { return XCTFail() }
        let obj = try JSONSerialization.jsonObject(with: Data(b)) as? [String: Any]
        XCTAssertEqual(obj?["status"] as? Int, 404)
        XCTAssertEqual(obj?["detail"] as? String, "No job \"x\".")
        XCTAssertEqual(obj?["type"] as? String, "about:blank")
        XCTAssertEqual(obj?["title"] as? String, "Not Found")
    }
}
