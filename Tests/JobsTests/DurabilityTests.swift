import Foundation
import XCTest
@testable import Jobs

final class DurabilityTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws { dir = try makeTempDir() }
    override func tearDown() { try? FileManager.default.removeItem(at: dir) }

    func testUnfinishedJobsRunAgainAfterRestartWithInputsIntact() throws {
        let blocked = FakeExecutor()
        let first = try JobSystem.open(directory: dir, executor: blocked, configuration: testConfig())
        // Jobs in "block" mode; the second system's executor releases everything.
        let ids = try ["one", "two", "three"].map { try first.submitTest("block", content: $0).record.id }
        waitUntil { first.status(ids[0]) == .running }
        first.shutdown(grace: 0.2)
        // The running job is persisted as queued, the others stay queued.
        for id in ids {
            let data = try Data(contentsOf: dir.appendingPathComponent("jobs/\(id)/job.json"))
            XCTAssertEqual(try JobsJSON.decode(JobRecord.self, from: Array(data)).status, .queued)
        }
        waitUntil { blocked.canceledSeen.contains(ids[0]) } // the abandoned executor was told to stop
        XCTAssertThrowsError(try first.submitTest())

        let working = FakeExecutor()
        working.releaseAll()
        let second = try JobSystem.open(directory: dir, executor: working, configuration: testConfig())
        defer { second.shutdown(grace: 5) }
        waitUntil { ids.allSatisfy { second.status($0) == .succeeded } }
        XCTAssertEqual(working.started, ids, "re-queued in submission order")
        for (id, content) in zip(ids, ["one", "two", "three"]) {
            let result = try XCTUnwrap(second.result(id: id))
            XCTAssertEqual(try Data(contentsOf: result.file), Data("done:\(content)".utf8))
        }
        XCTAssertEqual(second.snapshot(id: ids[0])?.record.attempts, 2)
        XCTAssertEqual(second.snapshot(id: ids[1])?.record.attempts, 1)
    }

    /// While the executor runs, the record on disk already says running with the attempt counted:
    /// what a job that crashes the process leaves behind for the crash-loop breaker.
    func testTheRunningRecordIsOnDiskBeforeTheExecutorRuns() throws {
        let blocked = FakeExecutor()
        let system = try JobSystem.open(directory: dir, executor: blocked, configuration: testConfig())
        defer { system.shutdown(grace: 0.2) }
        let id = try system.submitTest("block").record.id
        waitUntil { blocked.started.contains(id) }
        let data = try Data(contentsOf: dir.appendingPathComponent("jobs/\(id)/job.json"))
        let onDisk = try JobsJSON.decode(JobRecord.self, from: Array(data))
        XCTAssertEqual(onDisk.status, .running)
        XCTAssertEqual(onDisk.attempts, 1)
        XCTAssertNotNil(onDisk.startedAt)
        blocked.releaseAll()
        waitUntil { system.status(id) == .succeeded }
    }

    func testCrashedRunningJobIsRequeuedAndCrashLoopsAreBroken() throws {
        let store = try LocalJobStore(root: dir.appendingPathComponent("jobs"),
                                      tombstoneRoot: dir.appendingPathComponent("tombstones"))
        let blobs = try LocalBlobStore(root: dir.appendingPathComponent("jobs"))
        // As left by a process killed while running: status running.
        let now = Date()
        try blobs.put(Array("x".utf8), job: "crashedOnce", name: "content")
        try store.save(JobRecord(id: "crashedOnce", status: .running, createdAt: now, startedAt: now,
                                 inputs: ["content"], attempts: 1, sequence: 1))
        try blobs.put(Array("y".utf8), job: "crashLoop", name: "content")
        try store.save(JobRecord(id: "crashLoop", status: .running, createdAt: now, startedAt: now,
                                 inputs: ["content"], attempts: 3, sequence: 2))
        // Half-written leftovers: a temp file and a job directory without a record.
        try Data("partial".utf8).write(to: dir.appendingPathComponent("jobs/crashedOnce/.tmp-job.json-abc"))
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("jobs/orphan"), withIntermediateDirectories: true)
        try Data("z".utf8).write(to: dir.appendingPathComponent("jobs/orphan/content"))

        let executor = FakeExecutor()
        let system = try JobSystem.open(directory: dir, executor: executor, configuration: testConfig())
        defer { system.shutdown(grace: 5) }
        waitUntil { system.status("crashedOnce") == .succeeded }
        XCTAssertEqual(system.snapshot(id: "crashedOnce")?.record.attempts, 2)
        let loop = try XCTUnwrap(system.snapshot(id: "crashLoop")?.record)
        XCTAssertEqual(loop.status, .failed)
        XCTAssertEqual(loop.error?.status, 500)
        XCTAssertEqual(executor.started, ["crashedOnce"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("jobs/crashedOnce/.tmp-job.json-abc").path))
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("jobs/orphan").path))
        XCTAssertEqual(system.lookup(id: "orphan"), .notFound)
    }

    func testExpiredJobsAreRemovedAndReportExpired() throws {
        var config = testConfig(ttl: 60)
        config.tombstoneTTL = 100
        let system = try JobSystem.open(directory: dir, executor: FakeExecutor(), configuration: config)
        let job = try system.submitTest(key: "k1", digest: "d1")
        let id = job.record.id
        waitUntil { system.status(id) == .succeeded }
        let expiresAt = try XCTUnwrap(system.snapshot(id: id)?.record.expiresAt)
        let finishedAt = try XCTUnwrap(system.snapshot(id: id)?.record.finishedAt)
        XCTAssertEqual(expiresAt.timeIntervalSince(finishedAt), 60, accuracy: 0.01)
        XCTAssertEqual(system.sweep(now: expiresAt.addingTimeInterval(-0.5)), 0, "not expired yet")
        XCTAssertNotNil(system.result(id: id))
        XCTAssertEqual(system.sweep(now: expiresAt), 1)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("jobs/\(id)").path))
        guard case .expired = system.lookup(id: id) else { return XCTFail("not expired: \(system.lookup(id: id))") }
        guard case .expired = system.cancel(id: id) else { return XCTFail("cancel should say expired") }
        XCTAssertNil(system.snapshot(id: id))
        XCTAssertNil(system.result(id: id))
        // The idempotency key is free again after expiry.
        let again = try system.submit(inputs: [.bytes("content", [1])], idempotencyKey: "k1", requestDigest: "other")
        XCTAssertTrue(again.created)
        system.shutdown(grace: 5)

        // Tombstones survive a restart, then go after their own horizon.
        let reopened = try JobSystem.open(directory: dir, executor: FakeExecutor(), configuration: config)
        defer { reopened.shutdown(grace: 5) }
        guard case .expired = reopened.lookup(id: id) else { return XCTFail("tombstone lost on restart") }
        reopened.sweep(now: Date().addingTimeInterval(1000))
        XCTAssertEqual(reopened.lookup(id: id), .notFound)
        XCTAssertFalse(try FileManager.default.contentsOfDirectory(atPath: dir.appendingPathComponent("tombstones").path)
            .contains("\(id).json"))
    }

    func testSweeperTimerExpiresJobsOnItsOwn() throws {
        var config = testConfig(ttl: 0.1)
        config.sweepInterval = 0.05
        let system = try JobSystem.open(directory: dir, executor: FakeExecutor(), configuration: config)
        defer { system.shutdown(grace: 5) }
        let id = try system.submitTest().record.id
        waitUntil {
            if case .expired = system.lookup(id: id) { return true }
            return false
        }
        // The files go right after the record leaves memory.
        waitUntil { !FileManager.default.fileExists(atPath: self.dir.appendingPathComponent("jobs/\(id)").path) }
    }

    func testIdempotencyKeysSurviveRestart() throws {
        let executor = FakeExecutor()
        let system = try JobSystem.open(directory: dir, executor: executor, configuration: testConfig())
        let first = try system.submit(inputs: [.bytes("content", [1])], parameters: ["mode": "block"],
                                      idempotencyKey: "key-1", requestDigest: "digest-a")
        XCTAssertTrue(first.created)
        let replay = try system.submit(inputs: [.bytes("content", [1])], parameters: ["mode": "block"],
                                       idempotencyKey: "key-1", requestDigest: "digest-a")
        XCTAssertFalse(replay.created)
        XCTAssertEqual(replay.snapshot.record.id, first.snapshot.record.id)
        XCTAssertThrowsError(try system.submit(inputs: [.bytes("content", [2])], idempotencyKey: "key-1",
                                               requestDigest: "digest-b")) { error in
            XCTAssertEqual(error as? IdempotencyKeyReused,
                           IdempotencyKeyReused(key: "key-1", existingJobID: first.snapshot.record.id))
        }
        // A spooled file given with a replayed key is not consumed.
        let spool = dir.appendingPathComponent("spooled")
        try Data([9]).write(to: spool)
        let replayFromFile = try system.submit(inputs: [.file("content", spool)], idempotencyKey: "key-1", requestDigest: "digest-a")
        XCTAssertFalse(replayFromFile.created)
        XCTAssertTrue(FileManager.default.fileExists(atPath: spool.path))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.appendingPathComponent("jobs").path).count, 1)
        system.shutdown(grace: 0.1)
        executor.releaseAll()

        let reopened = try JobSystem.open(directory: dir, executor: FakeExecutor(), configuration: testConfig())
        defer { reopened.shutdown(grace: 5) }
        let afterRestart = try reopened.submit(inputs: [.bytes("content", [1])], idempotencyKey: "key-1", requestDigest: "digest-a")
        XCTAssertFalse(afterRestart.created)
        XCTAssertEqual(afterRestart.snapshot.record.id, first.snapshot.record.id)
        XCTAssertThrowsError(try reopened.submit(inputs: [.bytes("content", [1])], idempotencyKey: "key-1", requestDigest: "digest-c")) {
            XCTAssertTrue($0 is IdempotencyKeyReused)
        }
        // A different key makes a new job.
        XCTAssertTrue(try reopened.submit(inputs: [.bytes("content", [1])], idempotencyKey: "key-2", requestDigest: "digest-a").created)
    }

    func testBlobStorePutGetDelete() throws {
        let blobs = try LocalBlobStore(root: dir)
        try blobs.put([1, 2, 3], job: "job1", name: "a")
        XCTAssertEqual(try blobs.get(job: "job1", name: "a"), [1, 2, 3])
        try blobs.put([4], job: "job1", name: "a")
        XCTAssertEqual(try blobs.get(job: "job1", name: "a"), [4])
        let src = dir.appendingPathComponent("src")
        try Data([7, 7]).write(to: src)
        try blobs.put(file: src, job: "job1", name: "b")
        XCTAssertEqual(try blobs.get(job: "job1", name: "b"), [7, 7])
        XCTAssertNotNil(blobs.path(job: "job1", name: "b"))
        try blobs.delete(job: "job1", name: "b")
        XCTAssertNil(blobs.path(job: "job1", name: "b"))
        XCTAssertNil(try blobs.get(job: "job1", name: "b"))
        XCTAssertThrowsError(try blobs.put([1], job: "../x", name: "a"))
        XCTAssertThrowsError(try blobs.put([1], job: "job1", name: ".hidden"))
        try blobs.deleteAll(job: "job1")
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("job1").path))
    }

    func testCopyAcrossFileSystemsFallback() throws {
        // /dev/shm is usually tmpfs: a rename from there into the test dir may cross devices.
        let shm = URL(fileURLWithPath: "/dev/shm/jobs-test-\(UUID().uuidString)")
        guard FileManager.default.createFile(atPath: shm.path, contents: Data(repeating: 5, count: 3_000_000)) else {
            throw XCTSkip("no /dev/shm")
        }
        let blobs = try LocalBlobStore(root: dir)
        try blobs.put(file: shm, job: "j", name: "big")
        XCTAssertFalse(FileManager.default.fileExists(atPath: shm.path))
        XCTAssertEqual(try blobs.get(job: "j", name: "big"), [UInt8](repeating: 5, count: 3_000_000))
    }
}

final class StyleLibraryTests: XCTestCase {
    var dir: URL!
    override func setUpWithError() throws { dir = try makeTempDir() }
    override func tearDown() { try? FileManager.default.removeItem(at: dir) }

    func testRegisterListGetDeleteAndDerivedSurviveRestart() throws {
        let library = try StyleLibrary(directory: dir)
        let a = try library.register(bytes: [1, 2, 3], metadata: StyleMetadata(name: "Starry", contentType: "image/png", width: 4, height: 2))
        let file = dir.appendingPathComponent("upload")
        try Data([9, 9]).write(to: file)
        let b = try library.register(imageFile: file, metadata: StyleMetadata(contentType: "image/jpeg"))
        XCTAssertFalse(FileManager.default.fileExists(atPath: file.path))
        XCTAssertNotEqual(a.id, b.id)
        XCTAssertEqual(library.list().map(\.id), [a.id, b.id])
        XCTAssertEqual(library.get(a.id)?.name, "Starry")
        XCTAssertEqual(library.get(a.id)?.width, 4)
        XCTAssertEqual(library.get(a.id)?.imageSize, 3)
        XCTAssertEqual(library.get(a.id)?.imageSHA256, SHA256Digest.hex([1, 2, 3]))
        XCTAssertEqual(try library.imageBytes(b.id), [9, 9])
        XCTAssertNil(library.get("missing"))

        XCTAssertNil(library.derived(a.id, key: "microast@512"))
        XCTAssertTrue(try library.putDerived(a.id, key: "microast@512", bytes: [42, 43]))
        XCTAssertTrue(try library.putDerived(a.id, key: "adain@256", bytes: [1]))
        XCTAssertTrue(try library.putDerived(a.id, key: "microast@512", bytes: [44]))
        XCTAssertEqual(library.derived(a.id, key: "microast@512"), [44])
        XCTAssertFalse(try library.putDerived("missing", key: "k", bytes: [1]))

        let reopened = try StyleLibrary(directory: dir)
        XCTAssertEqual(reopened.list(), library.list())
        XCTAssertEqual(reopened.derived(a.id, key: "microast@512"), [44])
        XCTAssertEqual(reopened.derived(a.id, key: "adain@256"), [1])
        XCTAssertEqual(reopened.get(a.id)?.derived.count, 2)

        XCTAssertTrue(try reopened.delete(a.id))
        XCTAssertFalse(try reopened.delete(a.id))
        XCTAssertNil(reopened.get(a.id))
        XCTAssertNil(reopened.derived(a.id, key: "microast@512"))
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent(a.id).path))
        XCTAssertEqual(try StyleLibrary(directory: dir).list().map(\.id), [b.id])

        try reopened.removeAllDerived()
        for entry in try FileManager.default.contentsOfDirectory(atPath: dir.appendingPathComponent(b.id).path) {
            XCTAssertFalse(entry.hasPrefix(".tmp-"))
        }
    }
}

final class JobsJSONTests: XCTestCase {
    func testDatesRoundTripExactlyAtMillisecondPrecision() throws {
        XCTAssertEqual(JobsJSON.format(Date(timeIntervalSince1970: 0)), "1970-01-01T00:00:00.000Z")
        XCTAssertEqual(JobsJSON.format(Date(timeIntervalSince1970: 1_700_000_000.5)), "2023-11-14T22:13:20.500Z")
        XCTAssertEqual(JobsJSON.parse("2023-11-14T22:13:20Z"), Date(timeIntervalSince1970: 1_700_000_000))
        XCTAssertEqual(JobsJSON.parse("2023-11-14T22:13:20.5Z"), Date(timeIntervalSince1970: 1_700_000_000.5))
        XCTAssertEqual(JobsJSON.parse("2023-11-14T22:13:20.123456Z"), Date(timeIntervalSince1970: 1_700_000_000.123))
        XCTAssertNil(JobsJSON.parse("yesterday"))
        for _ in 0..<10_000 {
            let d = JobsJSON.normalize(Date(timeIntervalSince1970: Double.random(in: 0..<4_000_000_000)))
            XCTAssertEqual(JobsJSON.parse(JobsJSON.format(d)), d)
        }
        let record = JobRecord(id: "abc", createdAt: JobsJSON.now(), startedAt: JobsJSON.now(),
                               parameters: ["model": "microast"], error: JobFailure(status: 422, title: "t", detail: "d"))
        let decoded = try JobsJSON.decode(JobRecord.self, from: try JobsJSON.encode(record))
        XCTAssertEqual(decoded, record)
    }
}
