import Foundation
import Models
import XCTest

final class SafeTensorsTests: XCTestCase {
    func file(header: String, data: [UInt8] = []) -> [UInt8] {
        let h = [UInt8](header.utf8)
        var out = [UInt8]()
        var n = UInt64(h.count).littleEndian
        withUnsafeBytes(of: &n) { out.append(contentsOf: $0) }
        return out + h + data
    }

    func rejects(_ bytes: [UInt8], containing text: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try SafeTensors(bytes: bytes), file: file, line: line) { error in
            XCTAssertTrue("\(error)".contains(text), "message \"\(error)\" lacks \"\(text)\"", file: file, line: line)
        }
    }

    func testRoundTripKeepsValuesShapesAndMetadata() throws {
        let bytes = try SafeTensors.serialize([("a.weight", [2, 1, 1, 2], [1, -2, 3.5, 4]), ("a.bias", [2], [0.25, 9])],
                                              metadata: ["architecture": "x"])
        let st = try SafeTensors(bytes: bytes)
        XCTAssertEqual(try st.floats("a.weight"), [1, -2, 3.5, 4])
        XCTAssertEqual(try st.shape("a.bias"), [2])
        XCTAssertEqual(st.metadata["architecture"], "x")
    }

    func testRejectsTruncatedFiles() throws {
        let good = try SafeTensors.serialize([("t", [4], [1, 2, 3, 4])], metadata: [:])
        rejects(Array(good.prefix(5)), containing: "truncated")
        rejects(Array(good.prefix(12)), containing: "truncated")
        rejects(Array(good.dropLast(4)), containing: "out of range")
    }

    func testRejectsOutOfRangeOffsetsWrongDtypeAndInconsistentShapes() {
        rejects(file(header: #"{"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, data: [0, 0, 0, 0]), containing: "tensor t: data_offsets [0, 8] out of range")
        rejects(file(header: #"{"t":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}}"#, data: [0, 0, 0, 0]), containing: "tensor t: dtype F16, expected F32")
        rejects(file(header: #"{"t":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, data: [UInt8](repeating: 0, count: 8)), containing: "tensor t: shape [3] needs 12 bytes")
        rejects(file(header: "{not json"), containing: "not valid JSON")
        rejects(file(header: #"{"t":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}}"#, data: [0, 0, 0, 0]), containing: "out of range")
    }

    /// Fractional shapes and offsets are refused, not truncated (`[1.9]` once read as `[1]`).
    func testFractionalNumbersAreRejected() {
        rejects(file(header: #"{"t":{"dtype":"F32","shape":[1.9],"data_offsets":[0,4]}}"#, data: [0, 0, 0, 0]), containing: "tensor t: bad shape")
        rejects(file(header: #"{"t":{"dtype":"F32","shape":[1],"data_offsets":[0.5,4.7]}}"#, data: [0, 0, 0, 0]), containing: "tensor t: bad data_offsets")
        rejects(file(header: #"{"t":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}"#, data: [0, 0, 0, 0]), containing: "bad shape")
    }

    /// Hostile shapes whose element count overflows Int are an error naming the tensor, not a trap.
    func testOverflowingShapesAreRejected() {
        rejects(file(header: #"{"t":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,8]}}"#, data: [UInt8](repeating: 0, count: 8)),
                containing: "tensor t: shape [4611686018427387904, 4] is too large")
        rejects(file(header: #"{"t":{"dtype":"F32","shape":[9223372036854775807,9223372036854775807],"data_offsets":[0,8]}}"#, data: [UInt8](repeating: 0, count: 8)),
                containing: "tensor t: bad shape")
        rejects(file(header: #"{"t":{"dtype":"F32","shape":[1099511627776,4],"data_offsets":[0,8]}}"#, data: [UInt8](repeating: 0, count: 8)),
                containing: "needs 17592186044416 bytes")
    }

    func testWrongShapeOrMissingTensorNamesTheTensor() throws {
        // Build a microast-labelled file whose decoder conv has the wrong shape.
        let bytes = try SafeTensors.serialize([("content_encoder.enc1.0.conv_layer.weight", [16, 3, 9, 9], [Float](repeating: 0, count: 16 * 3 * 81)),
                                               ("content_encoder.enc1.0.conv_layer.bias", [16], [Float](repeating: 0, count: 16)),
                                               ("content_encoder.enc1.2.conv_layer.weight", [32, 2, 3, 3], [Float](repeating: 0, count: 32 * 2 * 9)),
                                               ("content_encoder.enc1.2.conv_layer.bias", [32], [Float](repeating: 0, count: 32))],
                                              metadata: ["architecture": "microast"])
        let path = NSTemporaryDirectory() + "/bad-microast-\(getpid()).safetensors"
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        XCTAssertThrowsError(try ModelLoader.load(path: path)) { error in
            XCTAssertEqual("\(error)", "tensor content_encoder.enc1.2.conv_layer.weight: shape [32, 2, 3, 3] expected [32, 1, 3, 3]")
        }
        // A VGG file missing a decoder layer.
        let st = try SafeTensors.serialize([("encoder.conv1_1.weight", [4, 3, 3, 3], [Float](repeating: 0, count: 108))], metadata: ["architecture": "adain-vgg19"])
        try Data(st).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try ModelLoader.load(path: path)) { error in
            XCTAssertEqual("\(error)", "missing tensor encoder.conv2_1.weight")
        }
    }

    func testFullSizeNetworkIsBuiltFromShapes() throws {
        let net = try ModelLoader.load(path: SharedData.modelsDirectory + "/adain-vgg19-full-random.safetensors") as! AdaINVGG
        XCTAssertEqual(net.widths, [64, 128, 256, 512])
        XCTAssertEqual(net.feature, "relu4_1")
        let relu31 = try ModelLoader.load(path: SharedData.modelsDirectory + "/adain-vgg19-relu31.safetensors") as! AdaINVGG
        XCTAssertEqual(relu31.widths, [64, 128, 256])
        XCTAssertEqual(relu31.sizeMultiple, 8)   // adain-vgg19 pads to multiples of 8
    }
}
