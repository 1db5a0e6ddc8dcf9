import XCTest
import HTTPCore
import TestSupport

final class ParserFuzzTests: XCTestCase {
    let seeds: [String] = [
        "GET /a?b=c HTTP/1.1\r\nHost: h\r\nX: y\r\n\r\n",
        "POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\nHost: h\r\n\r\n",
        "PUT /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nT: v\r\n\r\n",
    ]
    let alphabet: [UInt8] = Array("\r\n :;0123456789abcdefABCDEF-\t%/?=HTTP".utf8) + [0, 0x7F, 0xFF]

    /// Mutated requests: whatever the parser decides, it decides the same for any split, and never traps.
    func testMutatedInputsAreSplitInvariant() {
        var rng = SeededRandom(seed: 0x5EED)
        let limits = HTTPParserLimits(maxHeaderBytes: 256, maxHeaderCount: 8, maxBodyBytes: 64)
        for iteration in 0..<3000 {
            var bytes = Array(seeds[iteration % seeds.count].utf8)
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                let i = Int.random(in: 0..<bytes.count, using: &rng)
                switch Int.random(in: 0..<3, using: &rng) {
                case 0: bytes[i] = alphabet.randomElement(using: &rng)!
                case 1: bytes.insert(alphabet.randomElement(using: &rng)!, at: i)
                default: if bytes.count > 1 { bytes.remove(at: i) }
                }
            }
            var whole = HTTPRequestParser(limits: limits)
            let expected = normalize(whole.feed(bytes))
            var pieces = HTTPRequestParser(limits: limits)
            var got: [HTTPParserEvent] = []
            var offset = 0
            while offset < bytes.count {
                let n = min(bytes.count - offset, Int.random(in: 1...7, using: &rng))
                got += pieces.feed(Array(bytes[offset..<(offset + n)]))
                offset += n
            }
            XCTAssertEqual(normalize(got), expected, "iteration \(iteration): \(String(decoding: bytes, as: UTF8.self).debugDescription)")
        }
    }

    func testRandomGarbageNeverTraps() throws {
        var rng = SeededRandom(seed: 42)
        for _ in 0..<2000 {
            let bytes = (0..<Int.random(in: 0...300, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            var p = HTTPRequestParser()
            _ = p.feed(bytes)
            _ = try? MultipartParser.parse(body: .bytes(bytes), contentType: "multipart/form-data; boundary=ab",
                                           maxPartBytes: 100, maxParts: 5, spoolDirectory: NSTemporaryDirectory(), memoryThreshold: 1 << 20)
        }
    }
}
