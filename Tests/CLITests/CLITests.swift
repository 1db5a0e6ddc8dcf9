import Foundation
import ImageCodecs
import Models
import TestSupport
import XCTest

/// Runs the real `stylist` binary the way a user does.
final class CLITests: XCTestCase {
    static let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    var shared: String { ProcessInfo.processInfo.environment["STYLIST_SHARED"] ?? CLITests.repoRoot.appendingPathComponent("../shared").standardized.path }

    var binary: URL { StylistBinary.url }

    func run(_ args: [String], in directory: URL = CLITests.repoRoot, environment: [String: String]? = nil,
             executable: URL? = nil) throws -> (status: Int32, out: String, err: String) {
        try StylistBinary.run(args, in: directory, environment: environment, executable: executable)
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
                // By path: the random-weight network is not offered by name.
                "--model", "\(shared)/models/\(meta["model"]!).safetensors", "--alpha", meta["alpha"]!,
                "--style-weights", weights.map { "\($0)" }.joined(separator: ","), "-o", out])
            XCTAssertEqual(r.status, 0, "\(name): \(r.err)")
            let ours = try ImageDecoder.decode(contentsOf: out)
            let expected = try ImageDecoder.decode(contentsOf: "\(golden)/\(name).expected.png")
            XCTAssertEqual(ours.width, expected.width, name)
            XCTAssertEqual(ours.height, expected.height, name)
            let worst = zip(ours.pixels, expected.pixels).map { abs($0 - $1) * 255 }.max() ?? .infinity
            XCTAssertLessThanOrEqual(worst, 2.01, "\(name): worst channel difference \(worst) levels")
        }
    }

    /// The golden mask cases through `stylist stylize CONTENT STYLE_A STYLE_B --mask MASK.png`: within 2 levels.
    func testGoldenMaskCasesThroughTheCLI() throws {
        let dir = shared + "/golden-mask"
        for name in ["microast-cornell-mask", "cd16x-goldengate-mask-a07"] {
            let meta = try SafeTensors(contentsOf: "\(dir)/\(name).safetensors").metadata
            let out = NSTemporaryDirectory() + "cli-mask-\(getpid())-\(name).png"
            defer { try? FileManager.default.removeItem(atPath: out) }
            let r = try run(["stylize", "\(dir)/\(name).content.png", "\(dir)/\(name).style0.png", "\(dir)/\(name).style1.png",
                             "--mask", "\(dir)/\(name).mask.png", "--model", meta["model"]!, "--alpha", meta["alpha"]!, "-o", out])
            XCTAssertEqual(r.status, 0, "\(name): \(r.err)")
            let ours = try ImageDecoder.decode(contentsOf: out)
            let expected = try ImageDecoder.decode(contentsOf: "\(dir)/\(name).expected.png")
            XCTAssertEqual(ours.width, expected.width, name)
            XCTAssertEqual(ours.height, expected.height, name)
            let worst = zip(ours.pixels, expected.pixels).map { abs($0 - $1) * 255 }.max() ?? .infinity
            XCTAssertLessThanOrEqual(worst, 2.01, "\(name): worst channel difference \(worst) levels")
        }
    }

    func testBadInvocationsFailWithOneLine() throws {
        let style = "\(shared)/images/style/sketch.png", content = "\(shared)/images/content/cornell.jpg"
        let mask = "\(shared)/images/mask.png"
        let cases: [([String], String)] = [
            (["stylize", "/nonexistent.jpg", style, "-o", "/tmp/x.png"], "no such file"),
            (["stylize", "\(CLITests.repoRoot.path)/Package.swift", style, "-o", "/tmp/x.png"], "not a PNG or JPEG"),
            (["stylize", content, style, "-o", "/tmp/x.png", "--model", "nope"], "unknown model"),
            (["stylize", content, style, "-o", "/tmp/x.png", "--alpha", "1.5"], "alpha"),
            (["stylize", content, style, "-o", "/tmp/x.png", "--style-weights", "0.5,0.5"], "style_weights"),
            (["stylize", content, style, "-o", "/tmp/x.gif"], "must end in .png, .jpg or .jpeg"),
            (["stylize", content, style, "-o", "/tmp/x"], "must end in .png, .jpg or .jpeg"),
            (["stylize", content, style, "--mask", mask, "-o", "/tmp/x.png"], "--mask needs exactly two styles"),
            (["stylize", content, style, style, style, "--mask", mask, "-o", "/tmp/x.png"], "--mask needs exactly two styles"),
            (["stylize", content, style, style, "--mask", mask, "--style-weights", "1,1", "-o", "/tmp/x.png"], "--style-weights"),
            (["stylize", content, style, style, "--mask", "/nonexistent-mask.png", "-o", "/tmp/x.png"], "no such file"),
            (["stylize", content, style, style, "--mask", "\(CLITests.repoRoot.path)/Package.swift", "-o", "/tmp/x.png"], "mask"),
            // The random-weight benchmark network is not offered by name (only by path).
            (["stylize", content, style, "-o", "/tmp/x.png", "--model", "adain-vgg19-full-random"], "unknown model"),
            (["stylize", content, style, "-o", "/tmp/x.png", "--models", "/nonexistent-models"], "does not exist"),
        ]
        for (args, text) in cases {
            let r = try run(args)
            XCTAssertEqual(r.status, 1, args.joined(separator: " "))
            let lines = r.err.split(separator: "\n")
            XCTAssertEqual(lines.count, 1, "expected one line, got: \(r.err)")
            XCTAssertTrue(r.err.contains(text), "\(r.err) lacks \(text)")
        }
    }

    /// A clone with nothing beside it (no ../shared, no model settings): `stylize` finds the
    /// bundled models in ./models and matches the golden case; `models` lists only those.
    func testLoneCloneRunsOnTheBundledModels() throws {
        let clone = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("lone-\(getpid())/clone")
        try FileManager.default.createDirectory(at: clone, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: clone.deletingLastPathComponent()) }
        try FileManager.default.createSymbolicLink(at: clone.appendingPathComponent("models"),
                                                   withDestinationURL: CLITests.repoRoot.appendingPathComponent("models"))
        // The binary is copied away from the build tree so nothing beside it is found either.
        let binary = clone.appendingPathComponent("stylist")
        try FileManager.default.copyItem(at: self.binary, to: binary)
        var env = ProcessInfo.processInfo.environment
        for key in env.keys where key.hasPrefix("STYLIST_") { env[key] = nil }

        let listing = try run(["models"], in: clone, environment: env, executable: binary)
        XCTAssertEqual(listing.status, 0, listing.err)
        let names = listing.out.split(separator: "\n").dropFirst().compactMap { $0.split(separator: " ").first.map(String.init) }
        XCTAssertEqual(names, ["adain-vgg19-cd16x", "microast"], listing.out)
        XCTAssertTrue(listing.out.contains("MIT"), listing.out)

        let golden = shared + "/golden", name = "microast-cornell-matisse"
        let out = clone.appendingPathComponent("out.png").path
        let r = try run(["stylize", "\(golden)/\(name).content.png", "\(golden)/\(name).style0.png", "-o", out],
                        in: clone, environment: env, executable: binary)
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertEqual(r.err, "", "no progress bar when stderr is not a terminal")
        let ours = try ImageDecoder.decode(contentsOf: out)
        let expected = try ImageDecoder.decode(contentsOf: "\(golden)/\(name).expected.png")
        XCTAssertEqual(ours.width, expected.width)
        XCTAssertEqual(ours.height, expected.height)
        let worst = zip(ours.pixels, expected.pixels).map { abs($0 - $1) * 255 }.max() ?? .infinity
        XCTAssertLessThanOrEqual(worst, 2.01, "worst channel difference \(worst) levels")

        let missing = try run(["stylize", "\(golden)/\(name).content.png", "\(golden)/\(name).style0.png", "-o", out,
                               "--model", "adain-vgg19-relu31"], in: clone, environment: env, executable: binary)
        XCTAssertEqual(missing.status, 1)
        XCTAssertTrue(missing.err.contains("available: adain-vgg19-cd16x, microast"), missing.err)
    }

    /// On a terminal `stylize` draws a progress bar that reaches 100%; `--quiet` draws none.
    /// (util-linux `script` gives the command a pseudo-terminal.)
    func testProgressBarOnATerminalOnly() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/script") else { throw XCTSkip("no /usr/bin/script") }
        let golden = shared + "/golden", name = "microast-cornell-matisse"
        let out = NSTemporaryDirectory() + "cli-tty-\(getpid()).png"
        defer { try? FileManager.default.removeItem(atPath: out) }
        let command = [binary.path, "stylize", "\(golden)/\(name).content.png", "\(golden)/\(name).style0.png", "-o", out]
        let onTTY = try run(["-qec", command.joined(separator: " "), "/dev/null"], executable: URL(fileURLWithPath: "/usr/bin/script"))
        XCTAssertEqual(onTTY.status, 0, onTTY.err)
        XCTAssertTrue(onTTY.out.contains("stylizing ["), onTTY.out)
        XCTAssertTrue(onTTY.out.contains("100%"), onTTY.out)
        XCTAssertTrue(onTTY.out.contains("wrote \(out)"), onTTY.out)
        let quiet = try run(["-qec", (command + ["--quiet"]).joined(separator: " "), "/dev/null"],
                            executable: URL(fileURLWithPath: "/usr/bin/script"))
        XCTAssertEqual(quiet.status, 0, quiet.err)
        XCTAssertFalse(quiet.out.contains("stylizing ["), quiet.out)
        XCTAssertTrue(quiet.out.contains("wrote \(out)"), quiet.out)
    }
}
