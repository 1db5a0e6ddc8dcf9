import Foundation
import Models
import TestSupport
import XCTest

/// `stylist convert-weights` through the real binary, as a user runs it.
final class ConvertWeightsCLITests: XCTestCase {
    func run(_ args: [String]) throws -> (status: Int32, out: String, err: String) { try StylistBinary.run(args) }

    func testConvertWeightsWritesALoadableModel() throws {
        let dir = SharedCheckpointTests.shared + "/models/pth"
        guard FileManager.default.fileExists(atPath: dir) else { throw XCTSkip("shared checkpoints absent") }
        let out = NSTemporaryDirectory() + "cli-convert-\(getpid()).safetensors"
        defer { try? FileManager.default.removeItem(atPath: out) }
        let r = try run(["convert-weights", "\(dir)/cd16x_4SE_trained.pth", "\(dir)/cd16x_4SD_trained.pth", "-o", out])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertTrue(r.out.contains("cd16x -> adain-vgg19 relu4_1"), r.out)
        XCTAssertEqual(try ModelInfo(path: out).license, "MIT")
        XCTAssertNoThrow(try ModelLoader.load(path: out))

        let forced = try run(["convert-weights", "\(dir)/cd16x_4SE_trained.pth", "\(dir)/cd16x_4SD_trained.pth", "-o", out, "--layout", "microast"])
        XCTAssertEqual(forced.status, 1)
        XCTAssertTrue(forced.err.hasPrefix("error: ") && forced.err.split(separator: "\n").count == 1, forced.err)
    }

    func testBadInvocationsFailWithOneLine() throws {
        let junk = NSTemporaryDirectory() + "junk-\(getpid()).pth"
        try Data("not a checkpoint".utf8).write(to: URL(fileURLWithPath: junk))
        defer { try? FileManager.default.removeItem(atPath: junk) }
        for (args, fragment) in [(["/nonexistent.pth", "-o", "/tmp/x.safetensors"], "no such file"),
                                 ([junk, "-o", "/tmp/x.safetensors"], "not a PyTorch checkpoint"),
                                 ([junk, "-o", "/tmp/x.bin"], "must end in .safetensors")] {
            let r = try run(["convert-weights"] + args)
            XCTAssertEqual(r.status, 1, "\(args)")
            XCTAssertTrue(r.err.hasPrefix("error: ") && r.err.contains(fragment) && r.err.split(separator: "\n").count == 1, r.err)
        }
        XCTAssertNotEqual(try run(["convert-weights", junk, "-o", "/tmp/x.safetensors", "--layout", "resnet"]).status, 0)
    }
}
