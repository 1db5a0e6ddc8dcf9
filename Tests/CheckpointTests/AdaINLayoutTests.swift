import Checkpoints
import Foundation
import Models
import TestSupport
import XCTest

/// pytorch-AdaIN's nn.Sequential pair (no file of it is shared): synthetic checkpoints at small
/// widths with the module indices of its net.py convert to a file the engine loads.
final class AdaINLayoutTests: XCTestCase {
    /// (index, out, in, kernel) of pytorch-AdaIN's `vgg` convs through conv4_2 (the real file goes on to conv5_4).
    static func vgg(_ c: [Int]) -> [(Int, Int, Int, Int)] {
        [(0, 3, 3, 1), (2, c[0], 3, 3), (5, c[0], c[0], 3), (9, c[1], c[0], 3), (12, c[1], c[1], 3), (16, c[2], c[1], 3),
         (19, c[2], c[2], 3), (22, c[2], c[2], 3), (25, c[2], c[2], 3), (29, c[3], c[2], 3), (32, c[3], c[3], 3)]
    }

    /// pytorch-AdaIN's `decoder`.
    static func decoder(_ c: [Int]) -> [(Int, Int, Int, Int)] {
        [(1, c[2], c[3], 3), (5, c[2], c[2], 3), (8, c[2], c[2], 3), (11, c[2], c[2], 3), (14, c[1], c[2], 3),
         (18, c[1], c[1], 3), (21, c[0], c[1], 3), (25, c[0], c[0], 3), (28, 3, c[0], 3)]
    }

    static func checkpoint(_ convs: [(Int, Int, Int, Int)], seed: UInt64, zip: Bool) -> (bytes: [UInt8], values: [String: [Float]]) {
        var rng = SeededRandom(seed: seed)
        var tensors: [FixtureTensor] = [], storages: [String: [Float]] = [:]
        for (index, o, i, k) in convs {
            for (suffix, shape) in [("weight", [o, i, k, k]), ("bias", [o])] {
                let name = "\(index).\(suffix)"
                tensors.append(FixtureTensor(name, shape))
                storages[name] = rng.signedUnitFloats(shape.reduce(1, *))
            }
        }
        return (zip ? FixtureCheckpoint.zip(tensors, storages: storages) : FixtureCheckpoint.legacy(tensors, storages: storages), storages)
    }

    func testFullAdaINLayoutLoadsInTheEngine() throws {
        let widths = [4, 8, 12, 16]
        // One file in each torch.save format.
        let (vggBytes, vggValues) = Self.checkpoint(Self.vgg(widths), seed: 1, zip: false)
        let (decBytes, decValues) = Self.checkpoint(Self.decoder(widths), seed: 2, zip: true)
        let weights = try WeightsConverter.convert([try TorchCheckpoint(bytes: decBytes, name: "decoder.pth"),
                                                    try TorchCheckpoint(bytes: vggBytes, name: "vgg_normalised.pth")])
        XCTAssertEqual(weights.layout, .adain)
        XCTAssertEqual(weights.metadata["architecture"], "adain-vgg19")
        XCTAssertEqual(weights.metadata["feature"], "relu4_1")
        XCTAssertEqual(weights.metadata["decoder_final_relu"], "false")
        XCTAssertEqual(WeightsProvenance.license(metadata: weights.metadata), "MIT")
        let names = Set(weights.tensors.map(\.name))
        let reference = try Set(SafeTensors.header(atPath: try fullRandomPath()).entries.keys)
        XCTAssertEqual(names, reference, "the same names as the full-size canonical file")
        let byName = Dictionary(uniqueKeysWithValues: weights.tensors.map { ($0.name, $0) })
        XCTAssertEqual(byName["encoder.conv2_1.weight"]?.values, vggValues["9.weight"])
        XCTAssertEqual(byName["encoder.conv4_1.bias"]?.values, vggValues["29.bias"])
        XCTAssertEqual(byName["decoder.conv4_1.weight"]?.values, decValues["1.weight"])
        XCTAssertEqual(byName["decoder.conv3_1.weight"]?.shape, [widths[1], widths[2], 3, 3])
        XCTAssertEqual(byName["decoder.conv1_1.weight"]?.values, decValues["28.weight"])

        let path = NSTemporaryDirectory() + "adain-\(getpid()).safetensors"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try Data(try WeightsConverter.validatedBytes(weights)).write(to: URL(fileURLWithPath: path))
        let network = try ModelLoader.load(path: path)
        XCTAssertEqual(network.architecture, "adain-vgg19")
        XCTAssertEqual((network as? AdaINVGG)?.widths, widths)
    }

    func testRelu31SequentialPairIsTheWCTLayout() throws {
        let widths = [4, 8, 12]
        let vgg = Self.vgg(widths + [16]).prefix(6).map { $0 }
        let dec: [(Int, Int, Int, Int)] = [(1, 8, 12, 3), (5, 8, 8, 3), (8, 4, 8, 3), (12, 4, 4, 3), (15, 3, 4, 3)]
        let weights = try WeightsConverter.convert([try TorchCheckpoint(bytes: Self.checkpoint(vgg, seed: 3, zip: true).bytes, name: "vgg.pth"),
                                                    try TorchCheckpoint(bytes: Self.checkpoint(dec, seed: 4, zip: true).bytes, name: "inv.pth")])
        XCTAssertEqual(weights.layout, .wct)
        XCTAssertEqual(weights.metadata["feature"], "relu3_1")
        XCTAssertNoThrow(try WeightsConverter.validatedBytes(weights))
        // Forced to adain, the same pair converts with pytorch-AdaIN's provenance.
        let forced = try WeightsConverter.convert([try TorchCheckpoint(bytes: Self.checkpoint(vgg, seed: 3, zip: true).bytes, name: "vgg.pth"),
                                                   try TorchCheckpoint(bytes: Self.checkpoint(dec, seed: 4, zip: true).bytes, name: "inv.pth")], layout: .adain)
        XCTAssertTrue(forced.metadata["source"]!.hasPrefix("naoto0804/pytorch-AdaIN"))
    }

    func testMisplacedDecoderIndicesAreNamed() throws {
        let widths = [4, 8, 12, 16]
        var dec = Self.decoder(widths)
        dec[3].0 = 10
        let pair = [try TorchCheckpoint(bytes: Self.checkpoint(Self.vgg(widths), seed: 1, zip: true).bytes, name: "vgg.pth"),
                    try TorchCheckpoint(bytes: Self.checkpoint(dec, seed: 2, zip: true).bytes, name: "decoder.pth")]
        XCTAssertThrowsError(try WeightsConverter.convert(pair, layout: .adain)) { e in
            XCTAssertTrue("\(e)".contains("decoder.pth: conv indices [1, 5, 8, 10, 14"), "\(e)")
        }
        // A wrong width is caught by building the network, before any file is written.
        var narrow = Self.decoder(widths)
        narrow[2].1 = 5
        let bad = try WeightsConverter.convert([pair[0], try TorchCheckpoint(bytes: Self.checkpoint(narrow, seed: 2, zip: true).bytes, name: "decoder.pth")])
        XCTAssertThrowsError(try WeightsConverter.validatedBytes(bad)) { e in
            XCTAssertTrue("\(e)".contains("do not build the network") && "\(e)".contains("decoder.conv3_3"), "\(e)")
        }
    }

    func fullRandomPath() throws -> String {
        let path = SharedCheckpointTests.shared + "/models/adain-vgg19-full-random.safetensors"
        guard FileManager.default.fileExists(atPath: path) else { throw XCTSkip("shared models absent") }
        return path
    }
}
