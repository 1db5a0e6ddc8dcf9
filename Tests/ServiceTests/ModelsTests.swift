import Foundation
import StylePipeline
import StylistService
import StylistTesting
import XCTest

/// `GET /v1/models`, where models are looked for, and the bundled `models/` directory.
final class ModelsTests: ServiceTestCase {
    func testModelsEndpointListsRealModelsWithProvenance() throws {
        let server = try start()
        let c = try server.client()
        let r = try c.get("/v1/models")
        XCTAssertEqual(r.status, 200)
        XCTAssertEqual(r.json?["default"] as? String, "microast")
        let models = try XCTUnwrap(r.json?["models"] as? [[String: Any]])
        let byName = Dictionary(uniqueKeysWithValues: models.map { ($0["name"] as! String, $0) })
        XCTAssertEqual(models.map { $0["name"] as! String }, ["adain-vgg19-cd16x", "adain-vgg19-relu31", "microast"],
                       "sorted, and never the random-weight benchmark network")

        let micro = try XCTUnwrap(byName["microast"])
        XCTAssertEqual(micro["architecture"] as? String, "microast")
        XCTAssertEqual(micro["default"] as? Bool, true)
        XCTAssertEqual(micro["license"] as? String, "MIT")
        XCTAssertTrue((micro["source"] as? String ?? "").contains("EndyWon/MicroAST"))
        XCTAssertTrue(micro["feature"] is NSNull)
        XCTAssertEqual(Double(micro["parameters"] as? Int ?? 0) / 1e6, 0.47, accuracy: 0.005)   // MicroAST has 0.47 M parameters

        let cd16x = try XCTUnwrap(byName["adain-vgg19-cd16x"])
        XCTAssertEqual(cd16x["architecture"] as? String, "adain-vgg19")
        XCTAssertEqual(cd16x["feature"] as? String, "relu4_1")
        XCTAssertEqual(cd16x["default"] as? Bool, false)
        XCTAssertEqual(cd16x["license"] as? String, "MIT")
        XCTAssertEqual(Double(cd16x["parameters"] as? Int ?? 0) / 1e6, 0.44, accuracy: 0.005)

        // The WCT relu3_1 weights have no licence from their authors: none is claimed.
        let relu31 = try XCTUnwrap(byName["adain-vgg19-relu31"])
        XCTAssertTrue(relu31["license"] is NSNull, "\(relu31)")
        XCTAssertEqual(relu31["feature"] as? String, "relu3_1")

        // A job cannot name the benchmark network.
        let form = jobForm(content: try Golden.content(Golden.microast), styles: [try Golden.style(Golden.microast)],
                           fields: [("model", "adain-vgg19-full-random")])
        assertProblem(try c.post("/v1/jobs", form: form), 400, "Unknown model")
    }

    /// Configured directory first, then bundled (beside the binary, then ./models), then ../shared/models;
    /// every existing one is kept, so a configured directory adds models rather than hiding the bundled ones.
    func testSearchPathOrderAndUnion() throws {
        let root = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("search-\(getpid())")
        defer { try? FileManager.default.removeItem(at: root) }
        let fm = FileManager.default
        for dir in ["extra", "app/bin/models", "work/models", "shared/models"] {
            try fm.createDirectory(at: root.appendingPathComponent(dir), withIntermediateDirectories: true)
        }
        let bundled = TestPaths.repoRoot.appendingPathComponent("models/microast.safetensors")
        // The same name in two places: the earlier directory wins.
        try fm.copyItem(at: bundled, to: root.appendingPathComponent("extra/microast.safetensors"))
        try fm.copyItem(at: bundled, to: root.appendingPathComponent("app/bin/models/microast.safetensors"))
        try fm.copyItem(at: bundled, to: root.appendingPathComponent("work/models/mine.safetensors"))
        try fm.copyItem(at: TestPaths.repoRoot.appendingPathComponent("models/adain-vgg19-cd16x.safetensors"),
                        to: root.appendingPathComponent("shared/models/adain-vgg19-cd16x.safetensors"))
        try fm.copyItem(atPath: TestPaths.models + "/adain-vgg19-full-random.safetensors",
                        toPath: root.appendingPathComponent("shared/models/adain-vgg19-full-random.safetensors").path)

        let dirs = try ModelCatalog.searchPath(configured: "../extra", executablePath: root.path + "/app/bin/stylist",
                                               workingDirectory: root.path + "/work")
        XCTAssertEqual(dirs, ["extra", "app/bin/models", "work/models", "shared/models"].map { root.path + "/" + $0 })
        let catalog = ModelCatalog(directories: dirs)
        XCTAssertEqual(catalog.availableModels, ["adain-vgg19-cd16x", "microast", "mine"])
        XCTAssertEqual(catalog.info(named: "microast")?.path, root.path + "/extra/microast.safetensors")
        XCTAssertEqual(ModelCatalog(directories: dirs, includeBenchmarkOnly: true).availableModels,
                       ["adain-vgg19-cd16x", "adain-vgg19-full-random", "microast", "mine"])
        // Named by path, the benchmark network still loads.
        XCTAssertNoThrow(try catalog.network(named: root.path + "/shared/models/adain-vgg19-full-random.safetensors"))

        XCTAssertThrowsError(try ModelCatalog.searchPath(configured: root.path + "/missing", executablePath: nil,
                                                         workingDirectory: root.path)) {
            XCTAssertTrue("\($0)".contains("does not exist"), "\($0)")
        }
        // A server whose configured directory is missing stops with a message naming the setting.
        XCTAssertThrowsError(try start { $0.modelsDir = root.path + "/missing" }) { XCTAssertTrue("\($0)".contains("models_dir"), "\($0)") }
    }

    /// models/README.md states each bundled file's SHA-256; the files must match it.
    func testBundledModelsMatchTheirREADME() throws {
        let dir = TestPaths.repoRoot.appendingPathComponent("models")
        let readme = try String(contentsOf: dir.appendingPathComponent("README.md"), encoding: .utf8)
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".safetensors") }.sorted()
        XCTAssertEqual(files, ["adain-vgg19-cd16x.safetensors", "microast.safetensors"], "only the MIT-licensed models are bundled")
        for file in files {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/sha256sum")
            p.arguments = [dir.appendingPathComponent(file).path]
            let pipe = Pipe()
            p.standardOutput = pipe
            try p.run()
            let out = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            p.waitUntilExit()
            let digest = String(out.prefix(64))
            XCTAssertEqual(digest.count, 64)
            let row = readme.split(separator: "\n").first { $0.contains("`\(file)`") } ?? ""
            XCTAssertTrue(row.contains(digest), "models/README.md: \(file) should list SHA-256 \(digest)")
        }
    }

    /// A hostile model file beside real ones (a shape of [2^62, 4], which once killed `serve` with
    /// SIGILL): the server starts, serves jobs, and leaves the bad file out of the catalog.
    func testAHostileModelFileDoesNotStopTheServer() throws {
        let dir = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("hostile-models-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let header = Array(#"{"__metadata__":{"architecture":"microast"},"t":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,8]}}"#.utf8)
        var bytes = withUnsafeBytes(of: UInt64(header.count).littleEndian, Array.init) + header
        bytes += [UInt8](repeating: 0, count: 8)
        try Data(bytes).write(to: dir.appendingPathComponent("evil.safetensors"))
        let server = try start { $0.modelsDir = dir.path }
        let c = try server.client()
        let names = (try c.get("/v1/models").json?["models"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }
        XCTAssertFalse(names.contains("evil"), "\(names)")
        XCTAssertTrue(names.contains("microast"), "\(names)")
        let id = try submit(c, jobForm(content: try Golden.content(Golden.microast), styles: [try Golden.style(Golden.microast)]))
        XCTAssertEqual(try waitFor(c, id)["status"] as? String, "succeeded")
        assertProblem(try c.post("/v1/jobs", form: jobForm(content: try Golden.content(Golden.microast), styles: [try Golden.style(Golden.microast)],
                                                        fields: [("model", "evil")])), 400, "Unknown model")
    }
}
