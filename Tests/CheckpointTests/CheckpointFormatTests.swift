import Checkpoints
import Foundation
import TestSupport
import XCTest

/// Both torch.save formats, strides and offsets, wrappers, and hostile input, on hand-built checkpoints.
final class CheckpointFormatTests: XCTestCase {
    /// Two tensors sharing one storage at an offset, one transposed (non-contiguous), one contiguous.
    static func sample() -> (tensors: [FixtureTensor], storages: [String: [Float]]) {
        var t = FixtureTensor("layer.weight", [2, 3], key: "0")
        t.strides = [1, 2]             // the transpose of a 3x2 row-major block
        t.offset = 2
        let b = FixtureTensor("layer.bias", [2], key: "1")
        var alias = FixtureTensor("alias", [2], key: "0")
        alias.offset = 6
        return ([t, b, alias], ["0": [9, 9, 0, 1, 2, 3, 4, 5], "1": [0.5, -0.25]])
    }

    func checkSample(_ c: TorchCheckpoint) throws {
        XCTAssertEqual(c.keys, ["layer.weight", "layer.bias", "alias"])
        XCTAssertEqual(c["layer.weight"]?.shape, [2, 3])
        // Element (i, j) is storage[2 + i + 2j].
        XCTAssertEqual(try c["layer.weight"]!.floats(), [0, 2, 4, 1, 3, 5])
        XCTAssertEqual(try c["layer.bias"]!.floats(), [0.5, -0.25])
        XCTAssertEqual(try c["alias"]!.floats(), [4, 5])
    }

    func testZipCheckpointReadsTheRightTensors() throws {
        let (tensors, storages) = Self.sample()
        try checkSample(TorchCheckpoint(bytes: FixtureCheckpoint.zip(tensors, storages: storages), name: "tiny.pt"))
        // Wrapped as training scripts save it.
        try checkSample(TorchCheckpoint(bytes: FixtureCheckpoint.zip(tensors, storages: storages, wrap: "state_dict"), name: "tiny.pt"))
    }

    func testLegacyCheckpointReadsTheRightTensors() throws {
        let (tensors, storages) = Self.sample()
        try checkSample(TorchCheckpoint(bytes: FixtureCheckpoint.legacy(tensors, storages: storages), name: "tiny.pth"))
        try checkSample(TorchCheckpoint(bytes: FixtureCheckpoint.legacy(tensors, storages: storages, wrap: "model"), name: "tiny.pth"))
    }

    func testNonFloatTensorsAreRefusedByName() throws {
        var t = FixtureTensor("bn.num_batches_tracked", [1])
        t.storageType = "LongStorage"
        t.numel = 1 // one int64 in the storage's 8 bytes
        let c = try TorchCheckpoint(bytes: FixtureCheckpoint.zip([t], storages: [t.key: [0, 0]]), name: "bn.pt")
        XCTAssertThrowsError(try c["bn.num_batches_tracked"]!.floats()) { e in
            XCTAssertTrue("\(e)".contains("bn.pt: tensor bn.num_batches_tracked is int64; only float32"), "\(e)")
        }
    }

    func testGlobalsOutsideTheAllowedSetAreRefusedByName() throws {
        var p = PickleWriter()
        p.global("os", "system"); p.string("touch /tmp/pwned"); p.op(0x85, 0x52); p.stop() // TUPLE1 REDUCE
        let zip = FixtureCheckpoint.storedZip([("archive/data.pkl", p.bytes)])
        // Legacy: magic (15 bytes) and protocol version (6) of a real fixture, an empty sys info, then the hostile pickle.
        var info = PickleWriter(); info.op(0x7D); info.stop()
        let legacy = Array(FixtureCheckpoint.legacy([], storages: [:]).prefix(15 + 6)) + info.bytes + p.bytes
        for (bytes, name) in [(zip, "evil.pt"), (legacy, "evil.pth")] {
            XCTAssertThrowsError(try TorchCheckpoint(bytes: bytes, name: name)) { e in
                XCTAssertTrue("\(e)".contains("os.system") && "\(e)".contains("not allowed"), "\(e)")
            }
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: "/tmp/pwned"))
        // STACK_GLOBAL (protocol 4) is held to the same list.
        var q = PickleWriter()
        q.op(0x8C, 8); q.bytes += Array("builtins".utf8); q.op(0x8C, 4); q.bytes += Array("eval".utf8); q.op(0x93); q.stop()
        XCTAssertThrowsError(try TorchCheckpoint(bytes: FixtureCheckpoint.storedZip([("a/data.pkl", q.bytes)]), name: "evil.pt")) { e in
            XCTAssertTrue("\(e)".contains("builtins.eval"), "\(e)")
        }
    }

    func testEveryTruncationIsAnError() throws {
        let (tensors, storages) = Self.sample()
        for (bytes, name) in [(FixtureCheckpoint.legacy(tensors, storages: storages), "t.pth"), (FixtureCheckpoint.zip(tensors, storages: storages), "t.pt")] {
            for cut in 0..<bytes.count {
                XCTAssertThrowsError(try TorchCheckpoint(bytes: Array(bytes.prefix(cut)), name: name), "\(name) cut at \(cut)")
            }
        }
    }

    /// Random byte changes to the fixtures and to a small real checkpoint: any outcome but a crash
    /// (a trap would kill the test process). CHECKPOINT_FUZZ_ITERATIONS runs longer.
    func testCorruptedBytesNeverCrash() throws {
        let (tensors, storages) = Self.sample()
        var bases = [FixtureCheckpoint.legacy(tensors, storages: storages), FixtureCheckpoint.zip(tensors, storages: storages)]
        let real = SharedCheckpointTests.shared + "/models/pth/microast_modulator_iter_160000.pth.tar"
        if let data = FileManager.default.contents(atPath: real) { bases.append([UInt8](data.prefix(4000))) }
        let iterations = Int(ProcessInfo.processInfo.environment["CHECKPOINT_FUZZ_ITERATIONS"] ?? "") ?? 2000
        var rng = SeededRandom(seed: 0x9E37_79B9_7F4A_7C15)
        for base in bases {
            for _ in 0..<iterations {
                var bytes = base
                for _ in 0...Int.random(in: 0..<4, using: &rng) { bytes[Int.random(in: 0..<bytes.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng) }
                if let c = try? TorchCheckpoint(bytes: bytes, name: "fuzz") { for t in c.tensors { _ = try? t.tensor.floats() } }
            }
        }
    }

    func testAbsurdSizesAreErrors() throws {
        func expectError(_ bytes: [UInt8], _ fragment: String, file: StaticString = #filePath, line: UInt = #line) {
            XCTAssertThrowsError(try TorchCheckpoint(bytes: bytes, name: "absurd"), file: file, line: line) { e in
                XCTAssertTrue("\(e)".contains(fragment), "\(e)", file: file, line: line)
            }
        }
        // A string longer than the file.
        var p = PickleWriter(); p.op(0x58, 0xFF, 0xFF, 0xFF, 0xFF); p.stop()
        expectError(FixtureCheckpoint.storedZip([("a/data.pkl", p.bytes)]), "truncated")
        // Sizes whose product overflows, and a view past its storage.
        var t = FixtureTensor("w", [1 << 40, 1 << 40]); t.strides = [1 << 40, 1]
        expectError(FixtureCheckpoint.zip([t], storages: ["w": [1]]), "too large")
        var u = FixtureTensor("w", [4]); u.offset = 3
        expectError(FixtureCheckpoint.zip([u], storages: ["w": [1, 2, 3, 4]]), "reach element 6 of a storage of 4")
        var v = FixtureTensor("w", [2]); v.strides = [1 << 62]
        expectError(FixtureCheckpoint.legacy([v], storages: ["w": [1, 2]]), "reach element")
        // A legacy storage claiming 2^61 elements.
        var legacy = FixtureCheckpoint.legacy([FixtureTensor("w", [1])], storages: ["w": [7]])
        let countAt = legacy.count - 12
        legacy.replaceSubrange(countAt..<(countAt + 8), with: [0, 0, 0, 0, 0, 0, 0, 0x20])
        expectError(legacy, "too many to address")
        // A zip entry whose size runs past the file.
        var zip = FixtureCheckpoint.zip([FixtureTensor("w", [1])], storages: ["w": [7]])
        let eocd = zip.count - 22, cd = Int(zip[eocd + 16]) | Int(zip[eocd + 17]) << 8
        zip.replaceSubrange((cd + 20)..<(cd + 28), with: [0xF0, 0xFF, 0xFF, 0x7F, 0xF0, 0xFF, 0xFF, 0x7F])
        expectError(zip, "truncated")
        // Tuples nested past the limit, and lists nested 200000 deep (released without recursion).
        var deep = PickleWriter(); deep.op(0x4E); for _ in 0..<1000 { deep.op(0x85) }; deep.stop()
        expectError(FixtureCheckpoint.storedZip([("a/data.pkl", deep.bytes)]), "nested deeper")
        // Each new list is appended into the previous one, building a 200000-deep chain.
        var lists = PickleWriter(); lists.op(0x5D, 0x71, 0) // root, memo 0
        for _ in 0..<200_000 { lists.op(0x68, 0, 0x5D, 0x71, 0, 0x61, 0x30) } // get prev; new; memo it; append into prev; pop prev
        lists.op(0x4E); lists.stop()
        expectError(FixtureCheckpoint.storedZip([("a/data.pkl", lists.bytes)]), "STOP")
        // An opcode a state dict never uses (INST, which instantiates classes).
        var inst = PickleWriter(); inst.op(0x69); inst.stop()
        expectError(FixtureCheckpoint.storedZip([("a/data.pkl", inst.bytes)]), "unsupported opcode 0x69")
        // Compressed zip entries are refused clearly.
        var deflated = FixtureCheckpoint.zip([FixtureTensor("w", [1])], storages: ["w": [7]])
        let cd2 = Int(deflated[deflated.count - 22 + 16]) | Int(deflated[deflated.count - 22 + 17]) << 8
        deflated[cd2 + 10] = 8
        expectError(deflated, "compressed (method 8)")
        // A changed storage byte fails the entry's CRC-32.
        var flipped = FixtureCheckpoint.zip([FixtureTensor("w", [1])], storages: ["w": [7]])
        flipped[cd2 - 1] ^= 1 // the last byte before the central directory: storage w's data
        expectError(flipped, "fails its CRC-32 check")
    }
}
