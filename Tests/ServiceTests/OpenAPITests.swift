import Foundation
import StylistService
import StylistTesting
import XCTest

/// openapi.yaml describes exactly what the router serves. (Full validation:
/// `python3 -m openapi_spec_validator openapi.yaml`, where available; every test's
/// `tearDown` checks that each status the server answered is declared for its operation.)
final class OpenAPITests: ServiceTestCase {
    var rootFile: [UInt8] { get throws { try TestPaths.bytes(OpenAPIFile.path) } }

    /// openapi.yaml at the root is a link to the one file in the StylistService resources, and
    /// the server serves that file.
    func testServedCopyIsTheRootFile() throws {
        let root = TestPaths.repoRoot.appendingPathComponent("openapi.yaml").path
        XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: root), "Sources/StylistService/Resources/openapi.yaml",
                       "openapi.yaml must stay a link to the served file (one source)")
        let server = try start()
        let r = try server.client().get("/openapi.yaml")
        XCTAssertEqual(r.status, 200)
        XCTAssertEqual(r.headers["Content-Type"], "application/yaml; charset=utf-8")
        XCTAssertEqual(r.body, try rootFile)
    }

    func testEveryRouteIsDocumentedAndEveryDocumentedOperationIsRouted() throws {
        let server = try start()
        let served = Set(server.server.routes.filter { $0.method != "HEAD" }.map { "\($0.method) \($0.template)" })
        let ops = try OpenAPIFile.operations()
        let documented = Set(ops.flatMap { path, methods in methods.keys.map { "\($0) \(path)" } })
        XCTAssertEqual(served.subtracting(documented).sorted(), [], "routes missing from openapi.yaml")
        XCTAssertEqual(documented.subtracting(served).sorted(), [], "openapi.yaml operations the server does not serve")
        let text = String(decoding: try rootFile, as: UTF8.self)
        XCTAssertTrue(text.hasPrefix("openapi: 3.1"))
        for schema in ["Job:", "Style:", "Problem:"] { XCTAssertTrue(text.contains("    \(schema)"), "no \(schema) schema") }
        // Every operation declares its success and, apart from health, its auth failure.
        for (path, methods) in ops {
            for (method, codes) in methods {
                XCTAssertTrue(codes.contains { $0.hasPrefix("2") }, "\(method) \(path) declares no 2xx")
                if !["/healthz", "/readyz", "/", "/app.js", "/app.css"].contains(path) {   // the web page is open: it asks for the key itself
                    XCTAssertTrue(codes.contains("401"), "\(method) \(path) does not declare 401")
                }
            }
        }
    }
}
