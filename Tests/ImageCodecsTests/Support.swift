import Foundation
import XCTest
@testable import ImageCodecs

/// Bytes of a committed fixture (Tests/ImageCodecsTests/Fixtures, made by make_fixtures.py).
func fixture(_ name: String, file: StaticString = #filePath, line: UInt = #line) throws -> [UInt8] {
    let url = try fixtureURL(name, file: file, line: line)
    return [UInt8](try Data(contentsOf: url))
}

func fixtureURL(_ name: String, file: StaticString = #filePath, line: UInt = #line) throws -> URL {
    let ext = (name as NSString).pathExtension
    let base = (name as NSString).deletingPathExtension
    guard let url = Bundle.module.url(forResource: base, withExtension: ext, subdirectory: "Fixtures") else {
        XCTFail("missing fixture \(name)", file: file, line: line)
        throw CocoaError(.fileNoSuchFile)
    }
    return url
}

/// The upright quadrant pattern of make_fixtures.py: 64x48, four solid colours.
enum Quad {
    static let width = 64, height = 48
    static let tl: [Int] = [200, 30, 40], tr: [Int] = [20, 180, 60]
    static let bl: [Int] = [30, 60, 220], br: [Int] = [240, 240, 20]
    /// Quadrant centres in display coordinates and the colour there.
    static let samples: [(x: Int, y: Int, rgb: [Int])] = [(16, 12, tl), (48, 12, tr), (16, 36, bl), (48, 36, br)]

    static func colour(x: Int, y: Int) -> [Int] {
        y < height / 2 ? (x < width / 2 ? tl : tr) : (x < width / 2 ? bl : br)
    }

    static func image() -> PlanarImage {
        var img = PlanarImage(width: width, height: height)
        let n = width * height
        for y in 0..<height {
            for x in 0..<width {
                let c = colour(x: x, y: y)
                for ch in 0..<3 { img.pixels[ch * n + y * width + x] = Float(c[ch]) / 255 }
            }
        }
        return img
    }
}

/// The pixel at (x, y) as 8-bit levels (rounded).
func levels(_ img: PlanarImage, _ x: Int, _ y: Int) -> [Int] {
    let p = img.pixel(x: x, y: y)
    return [p.r, p.g, p.b].map { Int(($0 * 255).rounded()) }
}

/// Asserts each channel of (x, y) is within `tolerance` levels of `expected`.
func assertLevels(_ img: PlanarImage, _ x: Int, _ y: Int, _ expected: [Int], tolerance: Int,
                  _ message: String = "", file: StaticString = #filePath, line: UInt = #line) {
    let got = levels(img, x, y)
    let diff = zip(got, expected).map { abs($0 - $1) }.max() ?? 0
    XCTAssertLessThanOrEqual(diff, tolerance, "pixel (\(x), \(y)) is \(got), expected \(expected) ±\(tolerance) \(message)",
                             file: file, line: line)
}

/// Asserts the pixel is exactly (r, g, b) as floats.
func assertExact(_ img: PlanarImage, _ x: Int, _ y: Int, _ r: Float, _ g: Float, _ b: Float,
                 file: StaticString = #filePath, line: UInt = #line) {
    let p = img.pixel(x: x, y: y)
    XCTAssert(p.r == r && p.g == g && p.b == b, "pixel (\(x), \(y)) is \(p), expected (\(r), \(g), \(b))",
              file: file, line: line)
}

/// Runs `body` and returns the ImageCodecError it throws (failing if it throws anything else or nothing).
@discardableResult
func codecError<T>(_ body: @autoclosure () throws -> T, _ message: String = "",
                   file: StaticString = #filePath, line: UInt = #line) -> ImageCodecError? {
    do {
        _ = try body()
        XCTFail("expected an ImageCodecError, got success. \(message)", file: file, line: line)
        return nil
    } catch let e as ImageCodecError {
        return e
    } catch {
        XCTFail("expected an ImageCodecError, got \(error). \(message)", file: file, line: line)
        return nil
    }
}

extension ImageCodecError {
    var isCorrupt: Bool { if case .corrupt = self { return true } else { return false } }
    var isUnsupported: Bool { if case .unsupportedFormat = self { return true } else { return false } }
    var isTooLarge: Bool { if case .tooLarge = self { return true } else { return false } }
}

// MARK: - Building PNG/JPEG bytes in-process

enum PNGBytes {
    static let signature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]

    static let crcTable: [UInt32] = (0..<256).map { n -> UInt32 in
        var c = UInt32(n)
        for _ in 0..<8 { c = (c & 1) != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    static func crc32(_ bytes: [UInt8]) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in bytes { c = crcTable[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8) }
        return c ^ 0xFFFF_FFFF
    }

    static func be32(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8((v >> 16) & 0xFF), UInt8((v >> 8) & 0xFF), UInt8(v & 0xFF)] }

    static func chunk(_ type: String, _ data: [UInt8]) -> [UInt8] {
        let t = Array(type.utf8)
        return be32(UInt32(data.count)) + t + data + be32(crc32(t + data))
    }

    /// A PNG whose IHDR claims `width` x `height` 8-bit RGB, followed by a token IDAT.
    static func claiming(width: UInt32, height: UInt32) -> [UInt8] {
        let ihdr = be32(width) + be32(height) + [8, 2, 0, 0, 0]
        return signature + chunk("IHDR", ihdr) + chunk("IDAT", [0x78, 0x9C, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]) + chunk("IEND", [])
    }
}

enum JPEGBytes {
    /// `jpeg` with an APP1 EXIF segment (TIFF byte order `bigEndian` ? "MM" : "II") holding
    /// only IFD0 tag 0x0112 = `orientation` inserted right after SOI.
    static func withExifOrientation(_ jpeg: [UInt8], _ orientation: UInt16, bigEndian: Bool) -> [UInt8] {
        func u16(_ v: UInt16) -> [UInt8] { bigEndian ? [UInt8(v >> 8), UInt8(v & 0xFF)] : [UInt8(v & 0xFF), UInt8(v >> 8)] }
        func u32(_ v: UInt32) -> [UInt8] {
            let b = [UInt8(v >> 24), UInt8((v >> 16) & 0xFF), UInt8((v >> 8) & 0xFF), UInt8(v & 0xFF)]
            return bigEndian ? b : b.reversed()
        }
        var tiff: [UInt8] = bigEndian ? [0x4D, 0x4D] : [0x49, 0x49]
        tiff += u16(42) + u32(8)
        tiff += u16(1)                                            // one entry
        tiff += u16(0x0112) + u16(3) + u32(1) + u16(orientation) + u16(0) // SHORT, inline
        tiff += u32(0)                                            // no next IFD
        let payload = Array("Exif".utf8) + [0, 0] + tiff
        let length = UInt16(payload.count + 2)
        let app1: [UInt8] = [0xFF, 0xE1, UInt8(length >> 8), UInt8(length & 0xFF)] + payload
        return Array(jpeg[0..<2]) + app1 + Array(jpeg[2...])
    }

    /// `jpeg` with the size fields of its first SOF0/SOF1/SOF2 segment replaced.
    static func withSOFSize(_ jpeg: [UInt8], width: UInt16, height: UInt16) -> [UInt8]? {
        var b = jpeg
        var i = 2
        while i + 9 < b.count {
            guard b[i] == 0xFF else { return nil }
            let marker = b[i + 1]
            let len = Int(b[i + 2]) << 8 | Int(b[i + 3])
            if marker == 0xC0 || marker == 0xC1 || marker == 0xC2 {
                b[i + 5] = UInt8(height >> 8); b[i + 6] = UInt8(height & 0xFF)
                b[i + 7] = UInt8(width >> 8); b[i + 8] = UInt8(width & 0xFF)
                return b
            }
            i += 2 + len
        }
        return nil
    }
}
