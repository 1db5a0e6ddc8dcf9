import Foundation
import ImageCodecs
import StylistTesting
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// Two `stylist serve` processes on one PostgreSQL cluster of the test's own, over real sockets:
/// a job made on one replica is waited for and downloaded on the other; a dozen jobs spread over
/// both run once each; `kill -9` of the replica running a job leaves it to the other after the
/// lease; a database restart loses no accepted job.
final class ReplicaTests: XCTestCase {
    /// One `stylist serve` child process and its log.
    final class Replica {
        let process = Process()
        let log: URL
        let dataDirectory: URL
        private(set) var port = 0

        init(name: String, databaseURL: String, role: String = "all", directory: URL) throws {
            dataDirectory = directory.appendingPathComponent("data-\(name)")
            log = directory.appendingPathComponent("\(name).log")
            FileManager.default.createFile(atPath: log.path, contents: nil)
            process.executableURL = StylistBinary.url
            process.arguments = ["serve", "--host", "127.0.0.1", "--port", "0", "--data-dir", dataDirectory.path,
                                 "--database-url", databaseURL, "--role", role]
            var environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("STYLIST_") || $0.key == "STYLIST_SHARED" }
            environment["STYLIST_MODELS"] = TestPaths.models
            environment["STYLIST_JOB_LEASE_SECONDS"] = "3"
            environment["STYLIST_SHUTDOWN_GRACE_SECONDS"] = "1"
            process.environment = environment
            process.currentDirectoryURL = directory
            let handle = try FileHandle(forWritingTo: log)
            process.standardError = handle
            process.standardOutput = handle
            try process.run()
            let deadline = Date().addingTimeInterval(60)
            while Date() < deadline {
                if let line = logText.split(separator: "\n").first(where: { $0.contains("stylist serving") }),
                   let range = line.range(of: #"127\.0\.0\.1:(\d+)"#, options: .regularExpression) {
                    port = Int(line[range].split(separator: ":").last!)!
                    return
                }
                guard process.isRunning else { break }
                usleep(50_000)
            }
            throw Failure("replica \(name) did not start: \(logText)")
        }

        var logText: String { (try? String(contentsOf: log, encoding: .utf8)) ?? "" }

        /// True when this replica's log says it started `job`.
        func started(_ job: String) -> Bool {
            logText.split(separator: "\n").contains { $0.contains("job started") && $0.contains(job) }
        }

        func client() throws -> HTTPClient { try HTTPClient(port: port, timeout: 120) }

        func kill9() {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }

        func stop() {
            guard process.isRunning else { return }
            process.terminate()
            process.waitUntilExit()
        }
    }

    struct Failure: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    var cluster: PrivatePostgres!
    var directory: URL!
    var replicas: [Replica] = []

    override func setUpWithError() throws {
        guard FileManager.default.isExecutableFile(atPath: StylistBinary.url.path) else {
            throw XCTSkip("no stylist binary at \(StylistBinary.url.path)")
        }
        guard let started = try PrivatePostgres.start() else { throw TestDatabaseURL.unavailable("PostgreSQL is not installed") }
        cluster = started
        directory = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("stylist-replicas-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDown() {
        for replica in replicas { replica.stop() }
        if testRun?.hasSucceeded == false {
            for (i, replica) in replicas.enumerated() { print("--- replica \(i) log ---\n\(replica.logText.suffix(6000))") }
        }
        cluster?.stop()
        if let directory { try? FileManager.default.removeItem(at: directory) }
    }

    func startReplica(_ name: String, role: String = "all") throws -> Replica {
        let replica = try Replica(name: name, databaseURL: cluster.url, role: role, directory: directory)
        replicas.append(replica)
        return replica
    }

    func form(model: String = "microast", maxSize: Int = 96) throws -> MultipartForm {
        var form = MultipartForm()
        form.file("content", try TestPaths.bytes("\(TestPaths.golden)/microast-goldengate-mix.content.png"))
        form.file("style", try TestPaths.bytes("\(TestPaths.golden)/microast-goldengate-mix.style0.png"))
        form.field("model", model)
        form.field("max_size", String(maxSize))
        return form
    }

    func submit(_ replica: Replica, _ form: MultipartForm) throws -> String {
        let r = try replica.client().post("/v1/jobs", form: form)
        XCTAssertEqual(r.status, 202, r.description)
        return try XCTUnwrap(r.json?["id"] as? String, r.description)
    }

    /// Long-polls `replica` until the job is finished.
    func finished(_ replica: Replica, _ id: String, timeout: Double = 120) throws -> [String: Any] {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let r = try? replica.client().get("/v1/jobs/\(id)?wait=20"), r.status == 200, let job = r.json,
               let status = job["status"] as? String, ["succeeded", "failed", "canceled"].contains(status) {
                return job
            }
            usleep(100_000)
        }
        throw Failure("job \(id) did not finish on :\(replica.port)")
    }

    func testAJobMadeOnOneReplicaIsWaitedForAndDownloadedOnTheOther() throws {
        let a = try startReplica("a"), b = try startReplica("b")
        let id = try submit(a, try form())
        let job = try finished(b, id)
        XCTAssertEqual(job["status"] as? String, "succeeded", "\(job)")
        let result = try b.client().get("/v1/jobs/\(id)/result")
        XCTAssertEqual(result.status, 200)
        XCTAssertEqual(try a.client().get("/v1/jobs/\(id)/result").body, result.body, "both replicas serve the same bytes")

        let cli = try StylistBinary.run(["stylize", "\(TestPaths.golden)/microast-goldengate-mix.content.png",
                                         "\(TestPaths.golden)/microast-goldengate-mix.style0.png", "--max-size", "96",
                                         "--models", TestPaths.models, "-o", directory.appendingPathComponent("cli.png").path])
        XCTAssertEqual(cli.status, 0, cli.err)
        let local = try ImageDecoder.decode(try TestPaths.bytes(directory.appendingPathComponent("cli.png").path))
        let served = try ImageDecoder.decode(result.body)
        XCTAssertEqual(served.width, local.width)
        XCTAssertEqual(served.height, local.height)
        XCTAssertEqual(served, local, "the replicas' result has the CLI's pixels")

        // A style registered on one replica is used by a job made on the other.
        var style = MultipartForm()
        style.file("style", try TestPaths.bytes("\(TestPaths.golden)/microast-goldengate-mix.style0.png"))
        let registered = try a.client().post("/v1/styles", form: style)
        XCTAssertEqual(registered.status, 201, registered.description)
        let styleID = try XCTUnwrap(registered.json?["id"] as? String)
        var byID = MultipartForm()
        byID.file("content", try TestPaths.bytes("\(TestPaths.golden)/microast-goldengate-mix.content.png"))
        byID.field("style_id", styleID)
        byID.field("max_size", "96")
        let second = try submit(b, byID)
        XCTAssertEqual(try finished(a, second)["status"] as? String, "succeeded")
        XCTAssertEqual(try a.client().get("/v1/jobs/\(second)/result").body, result.body, "the registered style gives the same result")
    }

    func testADozenJobsOverTwoReplicasRunOnceEach() throws {
        let a = try startReplica("a"), b = try startReplica("b")
        var ids: [String] = []
        for i in 0..<12 { ids.append(try submit(i % 2 == 0 ? a : b, try form())) }
        for (i, id) in ids.enumerated() {
            let job = try finished(i % 2 == 0 ? b : a, id)
            XCTAssertEqual(job["status"] as? String, "succeeded", "\(job)")
            XCTAssertEqual(job["attempts"] as? Int, 1, "\(job)")
        }
        for id in ids {
            let runs = [a, b].filter { $0.started(id) }.count
            XCTAssertEqual(runs, 1, "job \(id) started \(runs) times")
        }
    }

    func testKillingTheReplicaRunningAJobLeavesItToTheOther() throws {
        let a = try startReplica("a"), b = try startReplica("b")
        // VGG-19 at 512 px runs for seconds: long enough to be killed mid-job.
        let id = try submit(a, try form(model: "adain-vgg19-cd16x", maxSize: 512))
        let deadline = Date().addingTimeInterval(60)
        var runner: Replica?
        while runner == nil && Date() < deadline {
            runner = [a, b].first { $0.started(id) }
            usleep(20_000)
        }
        let victim = try XCTUnwrap(runner, "no replica started the job")
        let survivor = victim === a ? b : a
        victim.kill9()
        let job = try finished(survivor, id, timeout: 180)
        XCTAssertEqual(job["status"] as? String, "succeeded", "\(job)")
        XCTAssertEqual(job["attempts"] as? Int, 2, "\(job)")
        XCTAssertTrue(survivor.started(id))
        XCTAssertEqual(try survivor.client().get("/v1/jobs/\(id)/result").status, 200)
    }

    func testADatabaseRestartLosesNoAcceptedJob() throws {
        let a = try startReplica("a"), b = try startReplica("b")
        var ids: [String] = []
        // 512 px jobs: the queue is still busy when the database goes away.
        for i in 0..<6 { ids.append(try submit(i % 2 == 0 ? a : b, try form(maxSize: 512))) }
        try cluster.control("stop", "-m", "immediate")
        var sawUnready = false
        let deadline = Date().addingTimeInterval(20)
        while !sawUnready && Date() < deadline {
            if let r = try? a.client().get("/readyz"), r.status == 503 { sawUnready = true }
            usleep(100_000)
        }
        XCTAssertTrue(sawUnready, "/readyz never said the database was gone")
        let refused = try b.client().get("/v1/jobs/\(ids[0])")
        XCTAssertEqual(refused.status, 503, refused.description)
        XCTAssertNotNil(refused.headers["Retry-After"])
        try cluster.control("start")
        for i in 0..<2 { ids.append(try submitRetrying(i % 2 == 0 ? a : b, try form())) }
        for id in ids {
            let job = try finished(a, id, timeout: 180)
            XCTAssertEqual(job["status"] as? String, "succeeded", "\(job)")
        }
        let ready = try b.client().get("/readyz")
        XCTAssertEqual(ready.status, 200, ready.description)
    }

    func testAWorkerReplicaServesOnlyOperationsAndAnAPIReplicaRunsNoJobs() throws {
        let api = try startReplica("api", role: "api")
        let worker = try startReplica("worker", role: "worker")
        XCTAssertEqual(try worker.client().get("/healthz").status, 200)
        XCTAssertEqual(try worker.client().get("/metrics").status, 200)
        XCTAssertEqual(try worker.client().get("/v1/models").status, 404)
        let id = try submit(api, try form())
        XCTAssertEqual(try finished(api, id)["status"] as? String, "succeeded")
        XCTAssertTrue(worker.started(id))
        XCTAssertFalse(api.started(id))
    }

    /// Submits, retrying while the database is coming back (503).
    func submitRetrying(_ replica: Replica, _ form: MultipartForm) throws -> String {
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline {
            if let r = try? replica.client().post("/v1/jobs", form: form), r.status == 202, let id = r.json?["id"] as? String {
                return id
            }
            usleep(200_000)
        }
        throw Failure("no submission accepted after the restart")
    }
}
