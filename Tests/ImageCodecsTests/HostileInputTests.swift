import Foundation
import TestSupport
import XCTest
@testable import ImageCodecs

/// Files built to exhaust memory or time (issue 10): decompression bombs in ancillary PNG chunks,
/// floods of chunks and markers, endless progressive scans. Each must decode correctly when its
/// pixels are fine, or be refused with a clear error, in well under a second and without the
/// process growing. The files are made here at test time, so no large fixture is committed.
final class HostileInputTests: XCTestCase {
    /// Wall time allowed per probe or decode: the bombs took 5-40 s before their fixes, and a busy
    /// CI machine must not turn a pass into a failure, so the bound is generous.
    let timeBudget = 3.0

    /// 16x16, every pixel different, so a skipped or misread row would show.
    static let small: PlanarImage = {
        var img = PlanarImage(width: 16, height: 16)
        for y in 0..<16 {
            for x in 0..<16 {
                for c in 0..<3 { img.pixels[c * 256 + y * 16 + x] = Float((x * 13 + y * 7 + c * 80) % 256) / 255 }
            }
        }
        return img
    }()

    /// A zTXt chunk whose text inflates to `size` zero bytes: just under libpng's default
    /// per-chunk limit (8,000,000), which is what made the original bomb expand.
    static func zTXt(inflatingTo size: Int) -> [UInt8] {
        PNGBytes.chunk("zTXt", Array("Comment".utf8) + [0, 0] + Deflate.zlibZeros(count: size))
    }

    func testZTXtBombDecodesFastWithoutGrowing() throws {
        let png = try ImageEncoder.png(Self.small)
        let chunk = Self.zTXt(inflatingTo: 7_900_000)
        // 990 chunks before IDAT, as in the report, and 50 after it (read by png_read_end):
        // 8 GB of text in an 8 MB file.
        var bytes = PNGBytes.inserting(Array(repeating: chunk, count: 990).flatMap { $0 }, afterIHDROf: png)
        bytes = PNGBytes.inserting(Array(repeating: chunk, count: 50).flatMap { $0 }, beforeIENDOf: bytes)
        XCTAssertLessThan(bytes.count, 9_000_000)

        PeakRSS.reset()
        let before = PeakRSS.kB()
        var info: ImageInfo?
        let probeTime = try measure { info = try ImageDecoder.probe(bytes) }
        XCTAssertEqual(info, ImageInfo(format: .png, width: 16, height: 16))
        var img: PlanarImage?
        let decodeTime = try measure { img = try ImageDecoder.decode(bytes) }
        XCTAssertEqual(img, try ImageDecoder.decode(png), "the pixels are those of the plain file")
        let growth = PeakRSS.kB() - before
        XCTAssertLessThan(probeTime, timeBudget, "probe")
        XCTAssertLessThan(decodeTime, timeBudget, "decode")
        XCTAssertLessThan(growth, 100 * 1024, "peak RSS grew by \(growth) kB")
    }

    func testHugeICCProfilesAreSkipped() throws {
        let png = try ImageEncoder.png(Self.small)
        let expected = try ImageDecoder.decode(png)
        // A compressed profile that would inflate to 1 GB, and a 5 MB stored one (over the 1 MiB
        // per-chunk allocation limit: skipped, not an error).
        let bomb = PNGBytes.chunk("iCCP", Array("icc".utf8) + [0, 0] + Deflate.zlibZeros(count: 1 << 30))
        let big = PNGBytes.chunk("iCCP", Array("icc".utf8) + [0, 0] + [UInt8](repeating: 0xA5, count: 5_000_000))
        for (label, chunk) in [("1 GB when inflated", bomb), ("5 MB stored", big)] {
            let bytes = PNGBytes.inserting(chunk, afterIHDROf: png)
            PeakRSS.reset()
            let before = PeakRSS.kB()
            var img: PlanarImage?
            let t = try measure { img = try ImageDecoder.decode(bytes) }
            XCTAssertEqual(img, expected, label)
            XCTAssertLessThan(t, timeBudget, label)
            XCTAssertLessThan(PeakRSS.kB() - before, 100 * 1024, label)
            XCTAssertEqual(try ImageDecoder.probe(bytes), ImageInfo(format: .png, width: 16, height: 16), label)
        }
    }

    func testThousandsOfUnknownChunksAreSkipped() throws {
        let png = try ImageEncoder.png(Self.small)
        let expected = try ImageDecoder.decode(png)
        // Ancillary (lower-case first letter) private chunks, before and after IDAT, plus the
        // known ones we never use.
        var chunks: [UInt8] = []
        for i in 0..<5000 { chunks += PNGBytes.chunk("prVt", [UInt8](repeating: UInt8(i & 0xFF), count: 100)) }
        for type in ["tEXt", "iTXt", "eXIf", "sPLT", "gAMA", "cHRM", "pHYs", "tIME", "bKGD"] {
            chunks += PNGBytes.chunk(type, [UInt8](repeating: 1, count: 3000))
        }
        let bytes = PNGBytes.inserting(chunks, beforeIENDOf: PNGBytes.inserting(chunks, afterIHDROf: png))
        var img: PlanarImage?
        let t = try measure { img = try ImageDecoder.decode(bytes) }
        XCTAssertEqual(img, expected)
        XCTAssertLessThan(t, timeBudget)

        // An unknown critical chunk cannot be skipped: the file is refused.
        let critical = PNGBytes.inserting(PNGBytes.chunk("CRIT", [1, 2, 3]), afterIHDROf: png)
        let e = codecError(try ImageDecoder.decode(critical))
        XCTAssert(e?.isCorrupt == true, String(describing: e))
        XCTAssert(e?.description.contains("CRIT") == true, String(describing: e))
    }

    func testCompressedDataAfterTheLastRowIsBounded() throws {
        // The IDAT stream holds the 16x16 image, then deflated zeros: libpng would inflate them
        // all after the last row (a second per GB).
        let rows = (0..<16).flatMap { _ in [UInt8](repeating: 0, count: 1 + 48) }
        func png(trailingZeros: Int) -> [UInt8] {
            let idat = Deflate.zlib(stored: rows, thenZeros: trailingZeros)
            let ihdr = PNGBytes.be32(16) + PNGBytes.be32(16) + [8, 2, 0, 0, 0]
            return PNGBytes.signature + PNGBytes.chunk("IHDR", ihdr) + PNGBytes.chunk("IDAT", idat) + PNGBytes.chunk("IEND", [])
        }
        // A few stray bytes are tolerated, as libpng does.
        let img = try ImageDecoder.decode(png(trailingZeros: 1000))
        XCTAssertEqual(img, PlanarImage(width: 16, height: 16))

        let bomb = png(trailingZeros: 1 << 32)
        var error: ImageCodecError?
        let t = try measure { error = codecError(try ImageDecoder.decode(bomb)) }
        XCTAssertLessThan(t, timeBudget)
        XCTAssert(error?.isCorrupt == true, String(describing: error))
        XCTAssert(error?.description.contains("too much compressed data after the last row") == true, String(describing: error))
    }

    func testManyLargeJPEGMarkersCostNothing() throws {
        let jpeg = try fixture("quad_baseline.jpg")
        let expected = try ImageDecoder.decode(jpeg)
        // 25 of each: APP1 that starts like EXIF but has no orientation, APP2 (ICC), APP13
        // (Photoshop), COM; each 64 KiB: 6.5 MB of markers before the frame.
        let exifNoOrientation: [UInt8] = Array("Exif".utf8) + [0, 0] + [0x49, 0x49, 0x2A, 0, 8, 0, 0, 0, 0, 0]
        var markers: [UInt8] = []
        for i in 0..<100 {
            let (marker, head): (UInt8, [UInt8]) = [(0xE1, exifNoOrientation), (0xE2, Array("ICC_PROFILE".utf8)),
                                                    (0xED, Array("Photoshop 3.0".utf8)), (0xFE, [])][i % 4]
            markers += JPEGBytes.segment(marker, head + [UInt8](repeating: UInt8(i), count: 65_533 - head.count))
        }
        let bytes = Array(jpeg[0..<2]) + markers + Array(jpeg[2...])
        PeakRSS.reset()
        let before = PeakRSS.kB()
        var img: PlanarImage?
        let t = try measure { img = try ImageDecoder.decode(bytes) }
        XCTAssertEqual(img, expected)
        XCTAssertLessThan(t, timeBudget)
        XCTAssertLessThan(PeakRSS.kB() - before, 100 * 1024)

        // The first APP1 with a valid orientation still wins, after all the others.
        let rotated = JPEGBytes.withExifOrientation(jpeg, 6, bigEndian: false)
        let late = Array(rotated[0..<2]) + markers + Array(rotated[2...])
        XCTAssertEqual(try ImageDecoder.probe(late), ImageInfo(format: .jpeg, width: 48, height: 64))
        XCTAssertEqual(try ImageDecoder.decode(late), try ImageDecoder.decode(rotated))

        // A marker whose length runs past the end of the file is a truncated file.
        let cut = Array(jpeg[0..<2]) + [0xFF, 0xE1, 0xFF, 0xFF] + Array("Exif".utf8)
        XCTAssert(codecError(try ImageDecoder.probe(cut))?.isCorrupt == true)
    }

    func testEndlessProgressiveScansAreRefused() throws {
        let jpeg = try fixture("quad_progressive.jpg")
        let expected = try ImageDecoder.decode(jpeg)
        let scan = try XCTUnwrap(JPEGBytes.firstScan(jpeg))
        // Repeating the first (DC) scan sets the same coefficients again: 300 copies decode to
        // the same picture, 5000 are over the scan limit.
        func repeated(_ n: Int) -> [UInt8] {
            Array(jpeg[..<scan.upperBound]) + Array(repeating: Array(jpeg[scan]), count: n).flatMap { $0 } + Array(jpeg[scan.upperBound...])
        }
        XCTAssertEqual(try ImageDecoder.decode(repeated(300)), expected)
        var error: ImageCodecError?
        let t = try measure { error = codecError(try ImageDecoder.decode(repeated(5000))) }
        XCTAssertLessThan(t, timeBudget)
        XCTAssert(error?.isCorrupt == true, String(describing: error))
        XCTAssert(error?.description.contains("progressive scans") == true, String(describing: error))
    }

    private func measure(_ body: () throws -> Void) throws -> Double {
        let start = Date()
        try body()
        return Date().timeIntervalSince(start)
    }
}

/// Just enough deflate (RFC 1951) and zlib (RFC 1950) to build bombs: a run of zeros as one
/// dynamic-Huffman block where each 258-byte copy costs 2 bits (about 1030:1, like zlib -9).
enum Deflate {
    /// A zlib stream inflating to `count` zero bytes.
    static func zlibZeros(count: Int) -> [UInt8] {
        var w = BitWriter()
        w.bytes([0x78, 0x01])
        zerosBlock(count, final: true, &w)
        return w.finish() + PNGBytes.be32(adler32(of: [], thenZeros: count))
    }

    /// A zlib stream of `data` in a stored block followed by `zeros` zero bytes.
    static func zlib(stored data: [UInt8], thenZeros zeros: Int) -> [UInt8] {
        precondition(data.count <= 0xFFFF)
        var w = BitWriter()
        w.bytes([0x78, 0x01])
        w.bits(0, 1) // not final
        w.bits(0, 2) // stored
        w.align()
        let n = UInt16(data.count)
        w.bytes([UInt8(n & 0xFF), UInt8(n >> 8), UInt8(~n & 0xFF), UInt8(~n >> 8)] + data)
        zerosBlock(zeros, final: true, &w)
        return w.finish() + PNGBytes.be32(adler32(of: data, thenZeros: zeros))
    }

    /// Literal/length alphabet {0: "10", 256: "11", 285: "0"} (285 = copy 258), distance
    /// alphabet {0: "0", 1: "1"} (0 = distance 1), both complete prefix codes. The code lengths
    /// are sent with the code-length alphabet {1: "10", 2: "11", 18: "0"} (18 = run of zeros).
    private static func zerosBlock(_ count: Int, final: Bool, _ w: inout BitWriter) {
        w.bits(final ? 1 : 0, 1)
        w.bits(2, 2)        // dynamic Huffman
        w.bits(286 - 257, 5) // HLIT
        w.bits(2 - 1, 5)     // HDIST
        w.bits(18 - 4, 4)    // HCLEN: lengths up to code-length symbol 1 in the permuted order
        let order = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1]
        let codeLengthLengths = [18: 1, 2: 2, 1: 2]
        for symbol in order { w.bits(codeLengthLengths[symbol] ?? 0, 3) }
        let two = (code: 3, length: 2), one = (code: 2, length: 2), zeroRun = (code: 0, length: 1)
        func zeros(_ n: Int) { w.huffman(zeroRun); w.bits(n - 11, 7) }
        w.huffman(two)                // literal 0: length 2
        zeros(138); zeros(117)        // 1...255 unused
        w.huffman(two)                // 256 (end of block): length 2
        zeros(28)                     // 257...284 unused
        w.huffman(one)                // 285: length 1
        w.huffman(one); w.huffman(one) // distance codes 0 and 1: length 1

        let literalZero = (code: 2, length: 2), end = (code: 3, length: 2)
        guard count > 0 else { w.huffman(end); return }
        w.huffman(literalZero)
        let (copies, rest) = (count - 1).quotientAndRemainder(dividingBy: 258)
        w.zeroBits(2 * copies)        // each copy: length code 285 "0", distance code 0 "0"
        for _ in 0..<rest { w.huffman(literalZero) }
        w.huffman(end)
    }

    private static func adler32(of data: [UInt8], thenZeros zeros: Int) -> UInt32 {
        var a = 1, b = 0
        for byte in data {
            a = (a + Int(byte)) % 65521
            b = (b + a) % 65521
        }
        b = (b + (zeros % 65521) * a) % 65521
        return UInt32(b) << 16 | UInt32(a)
    }

    /// Bits least significant first, as deflate packs them.
    private struct BitWriter {
        var out: [UInt8] = []
        var current = 0, used = 0

        mutating func bits(_ value: Int, _ count: Int) {
            for i in 0..<count { bit((value >> i) & 1) }
        }

        /// A Huffman code goes most significant bit first.
        mutating func huffman(_ c: (code: Int, length: Int)) {
            for i in stride(from: c.length - 1, through: 0, by: -1) { bit((c.code >> i) & 1) }
        }

        mutating func zeroBits(_ n: Int) {
            var n = n
            while n > 0 && used != 0 { bit(0); n -= 1 }
            out += [UInt8](repeating: 0, count: n / 8)
            for _ in 0..<(n % 8) { bit(0) }
        }

        mutating func bit(_ b: Int) {
            current |= b << used
            used += 1
            if used == 8 { out.append(UInt8(current)); current = 0; used = 0 }
        }

        mutating func align() { while used != 0 { bit(0) } }

        mutating func bytes(_ b: [UInt8]) {
            precondition(used == 0)
            out += b
        }

        mutating func finish() -> [UInt8] {
            align()
            return out
        }
    }
}

extension PNGBytes {
    /// `png` with `bytes` (whole chunks) right after its IHDR, which is always first.
    static func inserting(_ bytes: [UInt8], afterIHDROf png: [UInt8]) -> [UInt8] {
        let end = 8 + 8 + 13 + 4
        return Array(png[..<end]) + bytes + Array(png[end...])
    }

    /// `png` with `bytes` (whole chunks) right before its IEND, which is always last.
    static func inserting(_ bytes: [UInt8], beforeIENDOf png: [UInt8]) -> [UInt8] {
        let start = png.count - 12
        return Array(png[..<start]) + bytes + Array(png[start...])
    }
}

extension JPEGBytes {
    /// A marker segment: FF, `marker`, the 16-bit length, `payload`.
    static func segment(_ marker: UInt8, _ payload: [UInt8]) -> [UInt8] {
        let n = payload.count + 2
        return [0xFF, marker, UInt8(n >> 8), UInt8(n & 0xFF)] + payload
    }

    /// The byte range of the first scan: its SOS segment and entropy-coded data, up to the next
    /// marker (not counting stuffed FF 00 bytes and restart markers).
    static func firstScan(_ jpeg: [UInt8]) -> Range<Int>? {
        var i = 2
        while i + 4 <= jpeg.count, jpeg[i] == 0xFF {
            let length = Int(jpeg[i + 2]) << 8 | Int(jpeg[i + 3])
            if jpeg[i + 1] != 0xDA { i += 2 + length; continue }
            var j = i + 2 + length
            while j + 1 < jpeg.count {
                if jpeg[j] == 0xFF, jpeg[j + 1] != 0, !(0xD0...0xD7).contains(jpeg[j + 1]) { return i..<j }
                j += 1
            }
            return nil
        }
        return nil
    }
}
