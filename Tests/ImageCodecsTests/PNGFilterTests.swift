import CImageCodecs
import XCTest
@testable import ImageCodecs

/// PNGs written here by hand, one row filter type per row (and stored deflate blocks), so the
/// decoder's undoing of each filter type is checked for RGB and RGBA, in one IDAT or split.
final class PNGFilterTests: XCTestCase {
    private static let crcTable: [UInt32] = (0..<256).map { n in
        (0..<8).reduce(UInt32(n)) { c, _ in c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
    }

    private func crc32(_ bytes: [UInt8]) -> UInt32 {
        ~bytes.reduce(~UInt32(0)) { Self.crcTable[Int(($0 ^ UInt32($1)) & 0xFF)] ^ ($0 >> 8) }
    }

    private func be32(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)] }

    private func chunk(_ type: String, _ data: [UInt8]) -> [UInt8] {
        let body = Array(type.utf8) + data
        return be32(UInt32(data.count)) + body + be32(crc32(body))
    }

    /// A zlib stream of stored blocks (no compression).
    private func zlibStored(_ data: [UInt8]) -> [UInt8] {
        var out: [UInt8] = [0x78, 0x01]
        var i = 0
        repeat {
            let n = min(65535, data.count - i)
            let final: UInt8 = i + n == data.count ? 1 : 0
            out += [final, UInt8(n & 0xFF), UInt8(n >> 8), UInt8(~n & 0xFF), UInt8((~n >> 8) & 0xFF)] + data[i..<(i + n)]
            i += n
        } while i < data.count
        var a: UInt32 = 1, b: UInt32 = 0
        for byte in data { a = (a + UInt32(byte)) % 65521; b = (b + a) % 65521 }
        return out + be32(b << 16 | a)
    }

    private func predict(_ type: Int, a: Int, b: Int, c: Int) -> Int {
        switch type {
        case 1: return a
        case 2: return b
        case 3: return (a + b) / 2
        case 4:
            let p = a + b - c, pa = abs(p - a), pb = abs(p - b), pc = abs(p - c)
            return pa <= pb && pa <= pc ? a : (pb <= pc ? b : c)
        default: return 0
        }
    }

    /// An 8-bit PNG of `rows` (each `width * channels` samples), row y filtered with type
    /// `filters[y]`, or y % 5 without `filters` (the first row's type byte replaced by
    /// `firstFilter` when given).
    private func png(width: Int, channels: Int, rows: [[UInt8]], idatParts: Int, firstFilter: Int? = nil,
                     filters: [Int]? = nil) -> [UInt8] {
        var filtered: [UInt8] = []
        for (y, row) in rows.enumerated() {
            let type = filters?[y] ?? y % 5
            filtered.append(UInt8(y == 0 ? firstFilter ?? type : type))
            for i in 0..<row.count {
                let a = i >= channels ? Int(row[i - channels]) : 0
                let b = y > 0 ? Int(rows[y - 1][i]) : 0
                let c = y > 0 && i >= channels ? Int(rows[y - 1][i - channels]) : 0
                filtered.append(UInt8(truncatingIfNeeded: Int(row[i]) - predict(type, a: a, b: b, c: c)))
            }
        }
        let ihdr = be32(UInt32(width)) + be32(UInt32(rows.count)) + [8, channels == 3 ? 2 : 6, 0, 0, 0]
        let stream = zlibStored(filtered)
        let size = (stream.count + idatParts - 1) / idatParts
        var file: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] + chunk("IHDR", ihdr) + chunk("tEXt", Array("k\0v".utf8))
        for start in stride(from: 0, to: stream.count, by: size) {
            file += chunk("IDAT", Array(stream[start..<min(start + size, stream.count)]))
        }
        return file + chunk("IEND", [])
    }

    func testEveryFilterTypeDecodesForRGBAndRGBA() throws {
        var state: UInt64 = 99
        for channels in [3, 4] {
            for parts in [1, 3] {
                let width = 37, height = 23
                let rows = (0..<height).map { y in
                    (0..<(width * channels)).map { i -> UInt8 in
                        state = state &* 6364136223846793005 &+ 1442695040888963407
                        return UInt8(truncatingIfNeeded: (i * 7 + y * 13) / 3 + Int(state >> 61))
                    }
                }
                let image = try ImageDecoder.decode(png(width: width, channels: channels, rows: rows, idatParts: parts))
                XCTAssertEqual([image.width, image.height], [width, height])
                var expected = PlanarImage(width: width, height: height)
                for y in 0..<height {
                    for x in 0..<width {
                        for c in 0..<3 { expected.pixels[c * width * height + y * width + x] = Float(rows[y][x * channels + c]) / 255 }
                    }
                }
                XCTAssertTrue(image == expected, "\(channels) channels, \(parts) IDAT chunks")
            }
        }
    }

    /// Random rows, with neighbouring samples close enough that every Paeth branch (a, b, c) is taken.
    private func randomRows(width: Int, height: Int, channels: Int, state: inout UInt64) -> [[UInt8]] {
        (0..<height).map { y in
            (0..<(width * channels)).map { i -> UInt8 in
                state = state &* 6364136223846793005 &+ 1442695040888963407
                let noise = Int(state >> 58)   // 0...63
                return UInt8(truncatingIfNeeded: (i * 5 + y * 11) / 2 + (state >> 63 == 0 ? noise : 255 - noise))
            }
        }
    }

    /// The planes `ImageDecoder` must give for `rows`.
    private func expectedImage(_ rows: [[UInt8]], width: Int, channels: Int) -> PlanarImage {
        var expected = PlanarImage(width: width, height: rows.count)
        let n = width * rows.count
        for (y, row) in rows.enumerated() {
            for x in 0..<width {
                for c in 0..<3 { expected.pixels[c * n + y * width + x] = Float(row[x * channels + c]) / 255 }
            }
        }
        return expected
    }

    /// The fast path unfilters consecutive Paeth rows four (AVX2 builds, rows of 4 pixels or
    /// more) or two at a time, and Sub, Avg and Paeth rows with SIMD loops: runs of Paeth rows of
    /// every length from 1 to 9, Paeth next to every other filter, at widths of 1 to 5 pixels and
    /// more, for RGB and RGBA, all decode to the rows written, on the fast path (not libpng's
    /// fallback).
    func testRunsOfEveryFilterDecodeOnTheFastPath() throws {
        var state: UInt64 = 7
        let sequences: [[Int]] = [
            [4, 4, 4, 4, 4, 4, 4],             // an odd run from the first row (zero row above)
            [4, 4, 4, 4, 4, 4],                // an even run
            [4, 4, 4, 4, 4, 4, 4, 4, 4],       // two runs of four and one row
            [2, 4, 4, 4, 4, 4, 1, 4, 4, 4, 4, 4, 4, 4, 4, 0, 4, 4, 4, 4],
            [0, 4, 4, 1, 4, 2, 4, 4, 3, 4, 4, 4],
            [1, 1, 3, 3, 2, 4, 1, 3, 4, 0, 4],
            (0..<40).map { _ in state = state &* 6364136223846793005 &+ 1442695040888963407; return Int(state >> 61) % 5 },
        ]
        for channels in [3, 4] {
            for width in [1, 2, 3, 4, 5, 33] {
                for filters in sequences {
                    let rows = randomRows(width: width, height: filters.count, channels: channels, state: &state)
                    let file = png(width: width, channels: channels, rows: rows, idatParts: 1, filters: filters)
                    let what = "\(channels) channels, width \(width), filters \(filters)"
                    var img = sc_image()
                    let status = file.withUnsafeBufferPointer { sc_png_decode_fast($0.baseAddress, $0.count, 1 << 30, &img) }
                    sc_free(img.pixels)
                    XCTAssertEqual(status, SC_OK, what)
                    XCTAssertTrue(try ImageDecoder.decode(file) == expectedImage(rows, width: width, channels: channels), what)
                }
            }
        }
    }

    /// Cut anywhere inside its data, a file of consecutive Paeth rows is refused with an error,
    /// never read past its end.
    func testTruncatedPaethRowsAreAnError() throws {
        var state: UInt64 = 3
        for channels in [3, 4] {
            let rows = randomRows(width: 9, height: 6, channels: channels, state: &state)
            let file = png(width: 9, channels: channels, rows: rows, idatParts: 1, filters: Array(repeating: 4, count: 6))
            XCTAssertNoThrow(try ImageDecoder.decode(file))
            for cut in stride(from: 33, to: file.count - 12, by: 7) {
                XCTAssertThrowsError(try ImageDecoder.decode(Array(file[..<cut])), "cut at \(cut) of \(file.count)")
            }
        }
    }

    func testABadFilterTypeOrAdlerIsStillAnError() throws {
        let rows = [[UInt8](repeating: 9, count: 12), [UInt8](repeating: 200, count: 12)]
        XCTAssertNoThrow(try ImageDecoder.decode(png(width: 4, channels: 3, rows: rows, idatParts: 1)))
        XCTAssertThrowsError(try ImageDecoder.decode(png(width: 4, channels: 3, rows: rows, idatParts: 1, firstFilter: 5))) {
            XCTAssertTrue("\($0)".contains("corrupt"), "\($0)")
        }
        // Flip a bit of the Adler-32 (the IDAT data's last byte) and give the chunk a valid CRC.
        var file = png(width: 4, channels: 3, rows: rows, idatParts: 1)
        let at = findIDAT(file), length = Int(be32Value(file, at: at))
        file[at + 8 + length - 1] ^= 0x40
        file.replaceSubrange((at + 8 + length)..<(at + 12 + length), with: be32(crc32(Array(file[(at + 4)..<(at + 8 + length)]))))
        XCTAssertThrowsError(try ImageDecoder.decode(file)) { XCTAssertTrue("\($0)".contains("corrupt"), "\($0)") }
    }

    private func findIDAT(_ png: [UInt8]) -> Int {
        var i = 8
        while i + 8 <= png.count {
            if Array(png[(i + 4)..<(i + 8)]) == Array("IDAT".utf8) { return i }
            i += 12 + Int(be32Value(png, at: i))
        }
        return -1
    }

    private func be32Value(_ p: [UInt8], at i: Int) -> UInt32 {
        p[i..<(i + 4)].reduce(0) { $0 << 8 | UInt32($1) }
    }
}
