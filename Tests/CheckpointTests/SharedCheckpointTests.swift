import Checkpoints
import Foundation
import Models
import XCTest

/// The checkpoints in `../shared/models/pth` convert to exactly the shipped safetensors files.
final class SharedCheckpointTests: XCTestCase {
    static let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    /// `STYLIST_SHARED`, else `../shared` next to the checkout (README.md).
    static var shared: String { ProcessInfo.processInfo.environment["STYLIST_SHARED"] ?? repoRoot.appendingPathComponent("../shared").standardized.path }

    static let sets: [(files: [String], layout: CheckpointLayout, reference: String)] = [
        (["microast_content_encoder_iter_160000.pth.tar", "microast_style_encoder_iter_160000.pth.tar",
          "microast_modulator_iter_160000.pth.tar", "microast_decoder_iter_160000.pth.tar"], .microast, "microast"),
        (["cd16x_4SE_trained.pth", "cd16x_4SD_trained.pth"], .cd16x, "adain-vgg19-cd16x"),
        (["wct_vgg_normalised_conv3_1.pth", "wct_feature_invertor_conv3_1.pth"], .wct, "adain-vgg19-relu31"),
    ]

    func pth(_ file: String) throws -> String {
        let path = Self.shared + "/models/pth/" + file
        guard FileManager.default.fileExists(atPath: path) else { throw XCTSkip("shared checkpoints absent (\(path))") }
        return path
    }

    func testEverySharedSetReproducesItsSafetensorsBitForBit() throws {
        for set in Self.sets {
            // Reversed order too: roles come from the tensors (and the encoders' file names), not argument order.
            for files in [set.files, set.files.reversed()] {
                let weights = try WeightsConverter.convert(paths: try files.map(pth))
                XCTAssertEqual(weights.layout, set.layout, set.reference)
                let reference = try SafeTensors(contentsOf: Self.shared + "/models/\(set.reference).safetensors")
                // Through the real writer and reader, as the file on disk will be read.
                let ours = try SafeTensors(bytes: try WeightsConverter.validatedBytes(weights), name: set.reference)
                XCTAssertEqual(ours.metadata, reference.metadata, set.reference)
                XCTAssertEqual(Set(ours.entries.keys), Set(reference.entries.keys), set.reference)
                for (name, entry) in reference.entries {
                    XCTAssertEqual(try ours.shape(name), entry.shape, "\(set.reference) \(name)")
                    let a = try ours.floats(name).map(\.bitPattern), b = try reference.floats(name).map(\.bitPattern)
                    XCTAssertTrue(a == b, "\(set.reference) \(name): values differ")
                }
            }
        }
    }

    func testForcedLayoutThatDoesNotFitIsAClearError() throws {
        let files = try Self.sets[2].files.map(pth)
        XCTAssertThrowsError(try WeightsConverter.convert(paths: files, layout: .microast)) { e in
            XCTAssertTrue("\(e)".contains("not a MicroAST checkpoint"), "\(e)")
        }
        XCTAssertThrowsError(try WeightsConverter.convert(paths: [files[0]])) { e in
            XCTAssertTrue("\(e)".contains("needs two checkpoints"), "\(e)")
        }
        // The two MicroAST encoders share tensor names: a file name must say which is which.
        let encoder = try TorchCheckpoint(bytes: [UInt8](try Data(contentsOf: URL(fileURLWithPath: try pth(Self.sets[0].files[0])))), name: "/tmp/encoder.pth")
        let others = try Self.sets[0].files.dropFirst().map { try TorchCheckpoint(contentsOf: try pth($0)) }
        XCTAssertThrowsError(try WeightsConverter.convert([encoder] + others)) { e in
            XCTAssertTrue("\(e)".contains("cannot tell the content encoder from the style encoder"), "\(e)")
        }
    }

    /// Cutting a real checkpoint anywhere gives an error naming the file, never a crash.
    func testTruncatedRealCheckpointsFail() throws {
        let path = try pth("cd16x_4SD_trained.pth")
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        for cut in [0, 1, 13, 14, 20, 100, 1000, 3000, bytes.count / 2, bytes.count - 4, bytes.count - 1] {
            XCTAssertThrowsError(try TorchCheckpoint(bytes: Array(bytes.prefix(cut)), name: "cut.pth"), "cut at \(cut)") { e in
                XCTAssertTrue(e is CheckpointError, "cut at \(cut): \(e)")
            }
        }
    }
}
