import Foundation
import HTTPCore
import ImageCodecs
import Jobs
import StylePipeline
import StylistService
import StylistTesting
import XCTest

/// Golden inputs (64-96 px) for fast end-to-end jobs.
enum Golden {
    static func content(_ name: String) throws -> [UInt8] { try TestPaths.bytes("\(TestPaths.golden)/\(name).content.png") }
    static func style(_ name: String, _ i: Int = 0) throws -> [UInt8] { try TestPaths.bytes("\(TestPaths.golden)/\(name).style\(i).png") }
    static func expected(_ name: String) throws -> [UInt8] { try TestPaths.bytes("\(TestPaths.golden)/\(name).expected.png") }
    static let microast = "microast-cornell-matisse"
}

/// The openapi.yaml at the repository root, read structurally: path -> method -> declared status codes.
enum OpenAPIFile {
    static var path: String { TestPaths.repoRoot.appendingPathComponent("openapi.yaml").path }

    /// Parses the `paths:` section of our openapi.yaml (2-space indentation: path at 2, method at
    /// 4, `responses:` at 6, status codes at 8).
    static func operations() throws -> [String: [String: Set<String>]] {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        var out: [String: [String: Set<String>]] = [:]
        var inPaths = false, currentPath: String?, currentMethod: String?, inResponses = false
        for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let line = String(raw)
            if line.trimmingCharacters(in: .whitespaces).isEmpty || line.trimmingCharacters(in: .whitespaces).hasPrefix("#") { continue }
            let indent = line.prefix(while: { $0 == " " }).count
            let body = line.trimmingCharacters(in: .whitespaces)
            if indent == 0 { inPaths = body == "paths:"; continue }
            guard inPaths else { continue }
            if indent == 2, body.hasSuffix(":") {
                currentPath = String(body.dropLast()).trimmingCharacters(in: CharacterSet(charactersIn: "'\""))
                out[currentPath!] = [:]
                currentMethod = nil
            } else if indent == 4, let p = currentPath, body.hasSuffix(":") {
                let m = String(body.dropLast())
                if ["get", "post", "put", "delete", "head", "patch", "options"].contains(m) {
                    currentMethod = m.uppercased()
                    out[p]![currentMethod!] = []
                } else {
                    currentMethod = nil
                }
                inResponses = false
            } else if indent == 6, currentMethod != nil {
                inResponses = body == "responses:"
            } else if indent == 8, inResponses, let p = currentPath, let m = currentMethod, let colon = body.firstIndex(of: ":") {
                let code = body[..<colon].trimmingCharacters(in: CharacterSet(charactersIn: "'\""))
                out[p]![m]!.insert(code)
            }
        }
        return out
    }
}

/// Base class: servers made through `start` are shut down after each test, and every status
/// they answered must be declared for its operation in openapi.yaml.
class ServiceTestCase: XCTestCase {
    var servers: [TestServer] = []
    var gates: [Gate] = []

    func start(hooks: StylistHooks = StylistHooks(), _ configure: (inout StylistConfig) -> Void = { _ in }) throws -> TestServer {
        let s = try TestServer(hooks: hooks, configure)
        servers.append(s)
        return s
    }

    func gate() -> Gate {
        let g = Gate()
        gates.append(g)
        return g
    }

    override func tearDownWithError() throws {
        for g in gates { g.release() }
        let ops = try OpenAPIFile.operations()
        for s in servers {
            s.stop(grace: 5)
            for instance in s.instances {
                for r in instance.metrics.observedResponses() where r.route != "unmatched" {
                    let method = r.method == "HEAD" ? "GET" : r.method
                    // 405 is answered for any method on a known path: declared under the path's operations.
                    if r.status == 405 { continue }
                    let declared = ops[r.route]?[method] ?? []
                    XCTAssertTrue(declared.contains(String(r.status)) || declared.contains("\(r.status / 100)XX"),
                                  "\(r.method) \(r.route) answered \(r.status), not declared in openapi.yaml (declared: \(declared.sorted()))")
                }
            }
        }
        servers = []
        gates = []
    }

    // MARK: Requests

    func jobForm(content: [UInt8], styles: [[UInt8]], styleIDs: [String] = [], fields: [(String, String)] = []) -> MultipartForm {
        var form = MultipartForm()
        form.file("content", content, filename: "content.png", contentType: "image/png")
        for s in styles { form.file("style", s, filename: "style.png", contentType: "image/png") }
        for id in styleIDs { form.field("style_id", id) }
        for (k, v) in fields { form.field(k, v) }
        return form
    }

    /// POSTs a job and asserts 202; returns its id.
    func submit(_ c: HTTPClient, _ form: MultipartForm, headers: [(String, String)] = [],
                file: StaticString = #filePath, line: UInt = #line) throws -> String {
        let r = try c.post("/v1/jobs", form: form, headers: headers)
        XCTAssertEqual(r.status, 202, r.description, file: file, line: line)
        guard let id = r.json?["id"] as? String else { throw ClientError("no job id in \(r)") }
        XCTAssertEqual(r.headers["Location"], "/v1/jobs/\(id)", file: file, line: line)
        return id
    }

    /// Long-polls until the job is terminal (or `status` when given); returns its JSON.
    @discardableResult
    func waitFor(_ c: HTTPClient, _ id: String, status: String? = nil, timeout: Double = 120,
                 file: StaticString = #filePath, line: UInt = #line) throws -> [String: Any] {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            let r = try c.get("/v1/jobs/\(id)?wait=5")
            guard r.status == 200, let job = r.json, let s = job["status"] as? String else {
                throw ClientError("GET job \(id): \(r)")
            }
            if let status, s == status { return job }
            if status == nil, ["succeeded", "failed", "canceled"].contains(s) { return job }
            if Date() > deadline {
                XCTFail("job \(id) is still \(s) after \(timeout) s", file: file, line: line)
                return job
            }
        }
    }

    /// Asserts an RFC 9457 problem answer with this status.
    func assertProblem(_ r: ClientResponse, _ status: Int, _ detailContains: String? = nil,
                       file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(r.status, status, r.description, file: file, line: line)
        XCTAssertEqual(r.headers["Content-Type"], "application/problem+json", r.description, file: file, line: line)
        let json = r.json
        XCTAssertEqual(json?["status"] as? Int, status, r.description, file: file, line: line)
        XCTAssertNotNil(json?["title"] as? String, r.description, file: file, line: line)
        XCTAssertNotNil(json?["type"] as? String, r.description, file: file, line: line)
        XCTAssertNotNil(json?["detail"] as? String, r.description, file: file, line: line)
        if let detailContains {
            XCTAssertTrue((json?["detail"] as? String ?? "").contains(detailContains),
                          "detail lacks '\(detailContains)': \(r.description)", file: file, line: line)
        }
    }

    /// What `Stylizer` makes directly for these inputs, as a decoded image.
    func directResult(model: String, content: [UInt8], styles: [[UInt8]], configure: (inout StylizeOptions) -> Void = { _ in }) throws -> PlanarImage {
        let network = try ModelCatalog(directory: TestPaths.models).network(named: model)
        var options = StylizeOptions()
        configure(&options)
        let result = try Stylizer(network: network).stylize(
            content: try Stylizer.decode(content, input: "content"),
            styles: try styles.map { .image(try Stylizer.decode($0, input: "style")) }, options: options)
        return try ImageDecoder.decode(try Stylizer.encode(result, options: options))
    }

    func assertSamePixels(_ a: PlanarImage, _ b: PlanarImage, _ message: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.width, b.width, message, file: file, line: line)
        XCTAssertEqual(a.height, b.height, message, file: file, line: line)
        XCTAssertTrue(a.pixels == b.pixels, "\(message): pixels differ", file: file, line: line)
    }
}
