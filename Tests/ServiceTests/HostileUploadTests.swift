import Foundation
import ImageCodecs
import StylistTesting
import XCTest

/// Issue 10: an upload built to explode must cost the server what its size says, at the header
/// check before the 202 and at the decode in the worker.
final class HostileUploadTests: ServiceTestCase {
    /// The reported file: a small PNG behind 990 zTXt chunks of deflated zeros (7.6 MB that
    /// inflate to 7.8 GB). Answered quickly, the job runs on the real pixels, the process stays small.
    func testZTXtBombIsAcceptedCheaply() throws {
        var picture = PlanarImage(width: 64, height: 64)
        for i in 0..<picture.pixels.count { picture.pixels[i] = Float(i % 251) / 250 }
        let bomb = ZTXtBomb.wrap(try ImageEncoder.png(picture), chunks: 990, inflatingTo: 7_900_000)
        XCTAssertGreaterThan(bomb.count, 7_000_000)

        let server = try start()
        let c = try server.client()
        PeakRSS.reset()
        let before = PeakRSS.kB()
        let start = Date()
        let id = try submit(c, jobForm(content: bomb, styles: [try Golden.style(Golden.microast)]))
        XCTAssertLessThan(Date().timeIntervalSince(start), 5, "the header check reads no text chunk")
        let job = try waitFor(c, id, timeout: 60)
        XCTAssertEqual(job["status"] as? String, "succeeded", "\(job)")
        let result = try ImageDecoder.decode(try c.get("/v1/jobs/\(id)/result").body)
        XCTAssertEqual([result.width, result.height], [64, 64])
        let growth = PeakRSS.kB() - before
        XCTAssertLessThan(growth, 300 * 1024, "peak RSS grew by \(growth) kB")
    }
}

/// zTXt chunks of zeros in a zlib stream of one dynamic-Huffman block whose codes make each
/// 258-byte copy 2 zero bits (ImageCodecsTests' `Deflate` explains the codes).
private enum ZTXtBomb {
    static func wrap(_ png: [UInt8], chunks: Int, inflatingTo size: Int) -> [UInt8] {
        let text = Array("Comment".utf8) + [0, 0] + zlibZeros(size)
        let data = Array("zTXt".utf8) + text
        let chunk = be32(UInt32(text.count)) + data + be32(crc32(data))
        let afterIHDR = 8 + 8 + 13 + 4
        return Array(png[..<afterIHDR]) + Array(repeating: chunk, count: chunks).flatMap { $0 } + Array(png[afterIHDR...])
    }

    private static func zlibZeros(_ count: Int) -> [UInt8] {
        precondition(count > 0)
        var out: [UInt8] = [0x78, 0x01], acc = 0, used = 0
        func bits(_ v: Int, _ n: Int) {
            for i in 0..<n {
                acc |= ((v >> i) & 1) << used
                used += 1
                if used == 8 { out.append(UInt8(acc)); acc = 0; used = 0 }
            }
        }
        func code(_ c: Int, _ n: Int) { for i in stride(from: n - 1, through: 0, by: -1) { bits(c >> i, 1) } }
        bits(1, 1); bits(2, 2); bits(29, 5); bits(1, 5); bits(14, 4)
        for symbol in [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1] {
            bits([18: 1, 2: 2, 1: 2][symbol] ?? 0, 3)
        }
        code(3, 2); code(0, 1); bits(127, 7); code(0, 1); bits(106, 7) // literal 0: 2, 1...255: 0
        code(3, 2); code(0, 1); bits(17, 7)                             // 256: 2, 257...284: 0
        code(2, 2); code(2, 2); code(2, 2)                              // 285: 1, distances 0, 1: 1
        code(2, 2)                                                      // literal 0
        let (copies, rest) = (count - 1).quotientAndRemainder(dividingBy: 258)
        for _ in 0..<copies { bits(0, 2) }                              // copy 258 at distance 1
        for _ in 0..<rest { code(2, 2) }
        code(3, 2)                                                      // end of block
        if used > 0 { out.append(UInt8(acc)) }
        return out + be32(UInt32(count % 65521) << 16 | 1)              // Adler-32 of zeros
    }

    private static func be32(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8((v >> 16) & 0xFF), UInt8((v >> 8) & 0xFF), UInt8(v & 0xFF)] }

    private static func crc32(_ bytes: [UInt8]) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in bytes {
            c ^= UInt32(b)
            for _ in 0..<8 { c = (c & 1) != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        }
        return c ^ 0xFFFF_FFFF
    }
}
