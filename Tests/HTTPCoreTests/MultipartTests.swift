import XCTest
import HTTPCore

final class MultipartTests: XCTestCase {
    var spool: String!

    override func setUpWithError() throws {
        spool = NSTemporaryDirectory() + "httpcore-mp-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: spool, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: spool)
    }

    func spoolFiles() -> [String] { (try? FileManager.default.contentsOfDirectory(atPath: spool)) ?? [] }

    let boundary = "----WebKitFormBoundary7MA4YWxkTrZu0gW"
    var sample: [UInt8] {
        let b = boundary
        var s = "This is a preamble.\r\n"
        s += "--\(b)\r\nContent-Disposition: form-data; name=\"alpha\"\r\n\r\n0.5\r\n"
        s += "--\(b)\r\nContent-Disposition: form-data; name=\"style_id\"\r\n\r\nmonet\r\n"
        s += "--\(b)\r\nContent-Disposition: form-data; name=style_id\r\n\r\nvan gogh\r\n"
        s += "--\(b)  \r\nContent-Disposition: form-data; name=\"content\"; filename=\"my \\\"cat\\\".png\"\r\nContent-Type: image/png\r\n\r\n"
        var bytes = Array(s.utf8)
        bytes += [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] + Array("\r\n--\(b)X not a boundary\r\n-".utf8) + (0..<200).map { UInt8($0) }
        bytes += Array("\r\n--\(b)\r\nContent-Disposition: form-data; name=\"empty\"\r\n\r\n\r\n--\(b)--\r\nepilogue ignored\r\n".utf8)
        return bytes
    }

    func check(_ parts: [MultipartPart], file: StaticString = #filePath, line: UInt = #line) throws {
        XCTAssertEqual(parts.map(\.name), ["alpha", "style_id", "style_id", "content", "empty"], file: file, line: line)
        XCTAssertEqual(try parts[0].body.readAll(), Array("0.5".utf8))
        XCTAssertEqual(try parts[1].body.readAll(), Array("monet".utf8))
        XCTAssertEqual(try parts[2].body.readAll(), Array("van gogh".utf8))
        XCTAssertEqual(parts[3].filename, "my \"cat\".png")
        XCTAssertEqual(parts[3].contentType, "image/png")
        let content = try parts[3].body.readAll()
        XCTAssertEqual(Array(content.prefix(8)), [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
        XCTAssertEqual(content.count, 8 + Array("\r\n--\(boundary)X not a boundary\r\n-".utf8).count + 200)
        XCTAssertNil(parts[0].filename)
        XCTAssertEqual(parts[4].body, .empty)
    }

    func testWholeBody() throws {
        let parts = try MultipartParser.parse(body: .bytes(sample), contentType: "multipart/form-data; boundary=\(boundary)",
                                              maxPartBytes: 1 << 20, maxParts: 10, spoolDirectory: spool)
        try check(parts)
        XCTAssertTrue(spoolFiles().isEmpty)
    }

    func testEverySplitPositionAndSpooling() throws {
        let bytes = sample
        for split in 0...bytes.count {
            // threshold 16: the file part goes to a spool file
            var p = MultipartStreamParser(boundary: boundary, maxPartBytes: 1 << 20, maxParts: 10, memoryThreshold: 16, spoolDirectory: spool)
            try bytes[..<split].withUnsafeBytes { try p.feed($0) }
            try bytes[split...].withUnsafeBytes { try p.feed($0) }
            let parts = try p.finish()
            try check(parts)
            guard case .file = parts[3].body else { return XCTFail("large part not spooled") }
            MultipartParser.removeSpoolFiles(parts)
        }
        XCTAssertTrue(spoolFiles().isEmpty)
    }

    func testQuotedBoundaryAndFileBody() throws {
        let b = "a b:c"
        let body = "--\(b)\r\nContent-Disposition: form-data; name=\"f\"; filename=\"x.jpg\"\r\n\r\nDATA\r\n--\(b)--"
        let path = spool + "/body"
        FileManager.default.createFile(atPath: path, contents: Data(body.utf8))
        let parts = try MultipartParser.parse(body: .file(path: path, length: body.utf8.count),
                                              contentType: "Multipart/Form-Data; charset=utf-8; boundary=\"\(b)\"",
                                              maxPartBytes: 100, maxParts: 10, spoolDirectory: spool)
        XCTAssertEqual(parts.count, 1)
        XCTAssertEqual(parts[0].filename, "x.jpg")
        XCTAssertEqual(try parts[0].body.readAll(), Array("DATA".utf8))
    }

    func testLimitsAndErrors() throws {
        func parse(_ body: String, ct: String? = nil, maxPart: Int = 1000, maxParts: Int = 10) -> MultipartError? {
            do {
                let parts = try MultipartParser.parse(body: .bytes(Array(body.utf8)), contentType: ct ?? "multipart/form-data; boundary=XX",
                                              maxPartBytes: maxPart, maxParts: maxParts, spoolDirectory: spool, memoryThreshold: 4)
                MultipartParser.removeSpoolFiles(parts)
                return nil
            } catch let e as MultipartError { return e } catch { XCTFail("\(error)"); return nil }
        }
        let ok = "--XX\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n0123456789\r\n--XX--\r\n"
        XCTAssertNil(parse(ok))
        XCTAssertEqual(parse(ok, maxPart: 5), .partTooLarge(name: "a", limit: 5))
        XCTAssertTrue(parse(ok, maxPart: 5)!.isTooLarge)
        XCTAssertEqual(parse(ok + "", maxParts: 0), .tooManyParts(limit: 0))
        XCTAssertEqual(parse("--XX\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nabc"), .missingFinalBoundary)
        XCTAssertEqual(parse("no boundary at all"), .missingInitialBoundary)
        XCTAssertEqual(parse("--XX\r\nContent-Disposition: form-data\r\n\r\nabc\r\n--XX--"), .missingName)
        XCTAssertEqual(parse("--XX\r\nContent-Type: text/plain\r\n\r\nabc\r\n--XX--"), .missingName)
        XCTAssertEqual(parse("--XX\r\nContent-Disposition: form-data; name=\"a\r\n\r\nabc\r\n--XX--"),
                       .malformedHeader("cannot parse Content-Disposition 'form-data; name=\"a'"))
        XCTAssertEqual(parse("--XX\r\nX: \(String(repeating: "h", count: 20000))\r\n\r\n--XX--"), .headerTooLong(limit: 16384))
        XCTAssertEqual(parse(ok, ct: "application/json"), .notMultipart(contentType: "application/json"))
        XCTAssertEqual(parse(ok, ct: "multipart/form-data"), .invalidBoundary("the Content-Type has no boundary parameter"))
        XCTAssertTrue(MultipartError.missingFinalBoundary.description.contains("closing boundary"))
        // Nothing is left in the spool directory after errors.
        XCTAssertTrue(spoolFiles().isEmpty, "\(spoolFiles())")
    }
}
