import Foundation
import StylistService
import StylistTesting
import XCTest

/// A data directory on a full disk: new work is refused with 507 (naming no server path),
/// accepted jobs stay intact, and the server takes jobs again once there is room.
/// The disk is a small tmpfs, so this test needs root (CI runs as root); elsewhere it is skipped.
final class FullDiskTests: ServiceTestCase {
    var mountPoint: URL!

    override func setUpWithError() throws {
        guard getuid() == 0 else { throw XCTSkip("mounting a tmpfs needs root") }
        mountPoint = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("fulldisk-\(getpid())")
        try FileManager.default.createDirectory(at: mountPoint, withIntermediateDirectories: true)
        guard Self.shell("/bin/mount", ["-t", "tmpfs", "-o", "size=8m", "tmpfs", mountPoint.path]) == 0 else {
            throw XCTSkip("cannot mount a tmpfs here")
        }
    }

    override func tearDownWithError() throws {
        try super.tearDownWithError()
        if let mountPoint {
            _ = Self.shell("/bin/umount", [mountPoint.path])
            try? FileManager.default.removeItem(at: mountPoint)
        }
    }

    static func shell(_ tool: String, _ args: [String]) -> Int32 {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: tool)
        p.arguments = args
        p.standardError = FileHandle.nullDevice
        do { try p.run() } catch { return -1 }
        p.waitUntilExit()
        return p.terminationStatus
    }

    /// Fills the disk up to the last byte with one file.
    func fill(_ url: URL) {
        let fd = open(url.path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        defer { close(fd) }
        let chunk = [UInt8](repeating: 0, count: 64 * 1024)
        var size = chunk.count
        while size >= 1 {
            let n = chunk.withUnsafeBytes { write(fd, $0.baseAddress, size) }
            if n <= 0 { size /= 2 }
        }
    }

    func testFullDiskAnswers507AndKeepsAcceptedJobs() throws {
        let dataDir = mountPoint.appendingPathComponent("data")
        let server = try TestServer(dataDirectory: dataDir)
        servers.append(server)
        let c = try server.client()
        let form = jobForm(content: try Golden.content(Golden.microast), styles: [try Golden.style(Golden.microast)])
        let accepted = try submit(c, form)
        XCTAssertEqual(try waitFor(c, accepted)["status"] as? String, "succeeded")
        let resultBefore = try c.get("/v1/jobs/\(accepted)/result").body

        let filler = mountPoint.appendingPathComponent("filler")
        fill(filler)
        for path in ["/v1/jobs", "/v1/styles"] {
            let r = path == "/v1/jobs" ? try c.post(path, form: form)
                : try c.post(path, form: { var f = MultipartForm(); f.file("style", try Golden.style(Golden.microast), contentType: "image/png"); return f }())
            assertProblem(r, 507)
            XCTAssertFalse(r.text.contains(mountPoint.path), "the answer names a server path: \(r.text)")
            XCTAssertFalse(r.text.contains("/tmp"), "the answer names a server path: \(r.text)")
        }
        // Accepted work is intact and served.
        XCTAssertEqual(try c.get("/v1/jobs/\(accepted)").json?["status"] as? String, "succeeded")
        XCTAssertEqual(try c.get("/v1/jobs/\(accepted)/result").body, resultBefore)

        try FileManager.default.removeItem(at: filler)
        let later = try submit(c, form)
        XCTAssertEqual(try waitFor(c, later)["status"] as? String, "succeeded")
    }
}
