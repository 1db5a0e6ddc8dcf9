import Foundation
import ImageCodecs
import StylistService
import StylistTesting
import XCTest

/// The README's curl session, run with the real curl (skipped where curl is not installed):
/// the service's PNG has exactly the pixels `stylist stylize` writes for the same inputs; a 2 MB
/// upload does not wait for curl's one-second 100-continue timeout; HTTPS when TLS is configured.
final class CurlTests: ServiceTestCase {
    static func which(_ tool: String) -> String? {
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
            let p = "\(dir)/\(tool)"
            if FileManager.default.isExecutableFile(atPath: p) { return p }
        }
        return nil
    }

    @discardableResult
    func run(_ tool: String, _ args: [String], in dir: URL) throws -> (status: Int32, out: String, err: String) {
        guard let path = Self.which(tool) ?? (FileManager.default.isExecutableFile(atPath: tool) ? tool : nil) else {
            throw XCTSkip("\(tool) is not installed")
        }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: path)
        p.arguments = args
        p.currentDirectoryURL = dir
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
    }

    var workDir: URL!

    override func setUpWithError() throws {
        workDir = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("stylist-curl-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: workDir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try super.tearDownWithError()
        try? FileManager.default.removeItem(at: workDir)
    }

    func testCurlSessionMatchesTheCLI() throws {
        let server = try start()
        let golden = "microast-goldengate-mix"
        let photo = "\(TestPaths.golden)/\(golden).content.png", painting = "\(TestPaths.golden)/\(golden).style0.png"
        let base = "http://127.0.0.1:\(server.port)"

        let post = try run("curl", ["-sS", "-F", "content=@\(photo)", "-F", "style=@\(painting)", "-F", "alpha=0.8", "\(base)/v1/jobs"], in: workDir)
        XCTAssertEqual(post.status, 0, post.err)
        let created = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(post.out.utf8)) as? [String: Any], post.out)
        let id = try XCTUnwrap(created["id"] as? String)
        let poll = try run("curl", ["-sS", "\(base)/v1/jobs/\(id)?wait=30"], in: workDir)
        var job = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(poll.out.utf8)) as? [String: Any])
        if job["status"] as? String != "succeeded" { job = try waitFor(try server.client(), id) }
        XCTAssertEqual(job["status"] as? String, "succeeded", "\(job)")
        let get = try run("curl", ["-sS", "-f", "-o", "out.png", "\(base)/v1/jobs/\(id)/result"], in: workDir)
        XCTAssertEqual(get.status, 0, get.err)

        // The CLI on the same inputs and parameters.
        let runner = URL(fileURLWithPath: (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0])
        let cli = runner.deletingLastPathComponent().appendingPathComponent("stylist").path
        guard FileManager.default.isExecutableFile(atPath: cli) else { throw XCTSkip("no stylist binary at \(cli)") }
        let made = try run(cli, ["stylize", photo, painting, "--alpha", "0.8", "--models", TestPaths.models, "-o", "cli.png"], in: workDir)
        XCTAssertEqual(made.status, 0, made.err)
        let served = try ImageDecoder.decode(try TestPaths.bytes(workDir.appendingPathComponent("out.png").path))
        let local = try ImageDecoder.decode(try TestPaths.bytes(workDir.appendingPathComponent("cli.png").path))
        assertSamePixels(served, local, "service vs CLI")
    }

    /// curl sends `Expect: 100-continue` for uploads over 1 KiB and waits up to a second for it.
    func testCurlUploadOfTwoMegabytesDoesNotWaitASecond() throws {
        let server = try start()
        let big = workDir.appendingPathComponent("big.png")
        try Data(try Golden.content(Golden.microast) + [UInt8](repeating: 7, count: 2_000_000)).write(to: big)
        let style = "\(TestPaths.golden)/\(Golden.microast).style0.png"
        let r = try run("curl", ["-sS", "-o", "/dev/null", "-w", "%{http_code} %{time_total}", "-F", "content=@\(big.path)",
                                 "-F", "style=@\(style)", "http://127.0.0.1:\(server.port)/v1/jobs"], in: workDir)
        let parts = r.out.split(separator: " ")
        XCTAssertEqual(parts.first, "202", r.out + r.err)
        XCTAssertLessThan(Double(parts.last ?? "9") ?? 9, 0.9, "the upload took \(r.out) s")
    }

    func testHTTPSWhenTLSIsConfigured() throws {
        let cert = workDir.appendingPathComponent("cert.pem").path, key = workDir.appendingPathComponent("key.pem").path
        let gen = try run("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                                      "-days", "1", "-subj", "/CN=127.0.0.1"], in: workDir)
        guard gen.status == 0 else { throw XCTSkip("openssl could not make a certificate: \(gen.err)") }
        let server = try start {
            $0.tls.cert = cert
            $0.tls.key = key
        }
        let r = try run("curl", ["-sS", "-k", "https://127.0.0.1:\(server.port)/healthz"], in: workDir)
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertTrue(r.out.contains("\"ok\""), r.out)
    }
}
