import Foundation
import ImageCodecs
import Models
import XCTest

/// Runs the real `stylist` binary the way a user does.
final class CLITests: XCTestCase {
    static let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    var shared: String { ProcessInfo.processInfo.environment["STYLIST_SHARED"] ?? CLITests.repoRoot.appendingPathComponent("../shared").standardized.path }

    var binary: URL {
        // The test runner (…/debug/StylistPackageTests.xctest) sits next to the built products.
        let runner = URL(fileURLWithPath: (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0])
        return runner.deletingLastPathComponent().appendingPathComponent("stylist")
    }

    func run(_ args: [String]) throws -> (status: Int32, out: String, err: String) {
        let p = Process()
        p.executableURL = binary
        p.arguments = args
        p.currentDirectoryURL = CLITests.repoRoot
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
    }

    func testStylizeWritesAPNGOfTheContentSize() throws {
        let out = NSTemporaryDirectory() + "cli-\(getpid()).png"
        defer { try? FileManager.default.removeItem(atPath: out) }
        let r = try run(["stylize", "\(shared)/golden/microast-goldengate-mix.content.png",
                         "\(shared)/golden/microast-goldengate-mix.style0.png", "\(shared)/golden/microast-goldengate-mix.style1.png",
                         "--style-weights", "0.7,0.3", "-o", out])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertTrue(r.out.contains("72x88"), r.out)
        XCTAssertTrue(r.out.contains("inference"), r.out)
        let bytes = try Data(contentsOf: URL(fileURLWithPath: out))
        XCTAssertEqual(Array(bytes.prefix(4)), [0x89, 0x50, 0x4E, 0x47])
        XCTAssertEqual(try ImageDecoder.decode(contentsOf: out).width, 72)
    }

    /// Every golden case's PNGs through the `stylist stylize` binary (decode, pipeline, encode):
    /// the written PNG is within 2 levels per channel of the independent reference's PNG.
    func testEveryGoldenCaseThroughTheCLI() throws {
        let golden = shared + "/golden"
        let names = try FileManager.default.contentsOfDirectory(atPath: golden)
            .filter { $0.hasSuffix(".expected.png") }.map { String($0.dropLast(".expected.png".count)) }.sorted()
        XCTAssertGreaterThanOrEqual(names.count, 8)
        for name in names {
            let meta = try SafeTensors(contentsOf: "\(golden)/\(name).safetensors").metadata
            let weights = try JSONDecoder().decode([Float].self, from: Data(meta["style_weights"]!.utf8))
            let out = NSTemporaryDirectory() + "cli-golden-\(getpid())-\(name).png"
            defer { try? FileManager.default.removeItem(atPath: out) }
            let styles = (0..<weights.count).map { "\(golden)/\(name).style\($0).png" }
            let r = try run(["stylize", "\(golden)/\(name).content.png"] + styles + [
                "--model", meta["model"]!, "--alpha", meta["alpha"]!,
                "--style-weights", weights.map { "\($0)" }.joined(separator: ","), "--models", shared + "/models", "-o", out])
            XCTAssertEqual(r.status, 0, "\(name): \(r.err)")
            let ours = try ImageDecoder.decode(contentsOf: out)
            let expected = try ImageDecoder.decode(contentsOf: "\(golden)/\(name).expected.png")
            XCTAssertEqual(ours.width, expected.width, name)
            XCTAssertEqual(ours.height, expected.height, name)
            let worst = zip(ours.pixels, expected.pixels).map { abs($0 - $1) * 255 }.max() ?? .infinity
            XCTAssertLessThanOrEqual(worst, 2.01, "\(name): worst channel difference \(worst) levels")
        }
    }

    func testBadInvocationsFailWithOneLine() throws {
        let style = "\(shared)/images/style/sketch.png", content = "\(shared)/images/content/cornell.jpg"
        let cases: [([String], String)] = [
            (["stylize", "/nonexistent.jpg", style, "-o", "/tmp/x.png"], "no such file"),
            (["stylize", "\(CLITests.repoRoot.path)/Package.swift", style, "-o", "/tmp/x.png"], "not a PNG or JPEG"),
            (["stylize", content, style, "-o", "/tmp/x.png", "--model", "nope"], "unknown model"),
            (["stylize", content, style, "-o", "/tmp/x.png", "--alpha", "1.5"], "alpha"),
            (["stylize", content, style, "-o", "/tmp/x.png", "--style-weights", "0.5,0.5"], "style_weights"),
        ]
        for (args, text) in cases {
            let r = try run(args)
            XCTAssertEqual(r.status, 1, args.joined(separator: " "))
            let lines = r.err.split(separator: "\n")
            XCTAssertEqual(lines.count, 1, "expected one line, got: \(r.err)")
            XCTAssertTrue(r.err.contains(text), "\(r.err) lacks \(text)")
        }
    }
}
