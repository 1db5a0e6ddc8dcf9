import Foundation
import XCTest
@testable import Jobs

/// A `JobStore` over the local one whose writes can be made to fail as on a full disk (ENOSPC).
final class FillableJobStore: JobStore, @unchecked Sendable {
    let inner: LocalJobStore
    private let lock = NSLock()
    private var full = false
    var diskFull: Bool {
        get { lock.lock(); defer { lock.unlock() }; return full }
        set { lock.lock(); full = newValue; lock.unlock() }
    }
    init(_ inner: LocalJobStore) { self.inner = inner }
    private func check(_ what: String) throws { if diskFull { throw StorageError("write", what, ENOSPC) } }
    func save(_ record: JobRecord) throws { try check("job.json"); try inner.save(record) }
    func loadAll() throws -> [JobRecord] { try inner.loadAll() }
    func delete(id: String) throws { try inner.delete(id: id) }
    func saveTombstone(_ tombstone: JobTombstone) throws { try check("tombstone"); try inner.saveTombstone(tombstone) }
    func loadTombstones() throws -> [JobTombstone] { try inner.loadTombstones() }
    func deleteTombstone(id: String) throws { try inner.deleteTombstone(id: id) }
}

/// Failed writes (a full disk) never lose an accepted job or its inputs, and sweeping still frees space.
final class FailedWriteTests: XCTestCase {
    var dir: URL!
    var executor: FakeExecutor!
    var store: FillableJobStore!

    override func setUpWithError() throws {
        dir = try makeTempDir()
        executor = FakeExecutor()
    }

    override func tearDownWithError() throws {
        executor.releaseAll()
        try? FileManager.default.removeItem(at: dir)
    }

    func open(_ config: JobSystem.Configuration = testConfig()) throws -> JobSystem {
        let jobs = dir.appendingPathComponent("jobs")
        store = FillableJobStore(try LocalJobStore(root: jobs, tombstoneRoot: dir.appendingPathComponent("tombstones")))
        return try JobSystem(jobStore: store, blobStore: try LocalBlobStore(root: jobs), executor: executor, configuration: config)
    }

    /// The final record cannot be saved: the inputs stay, and the job runs again (and succeeds) after a restart.
    func testFailedFinalSaveKeepsTheInputsAndTheJobRunsAgain() throws {
        var system = try open()
        let job = try system.submitTest("block", content: "keep me")
        let id = job.record.id
        waitUntil { system.status(id) == .running }
        store.diskFull = true
        executor.release(id)
        waitUntil { system.status(id) == .succeeded }
        XCTAssertNotNil(system.blobs.path(job: id, name: "content"), "inputs deleted although the final record was not saved")
        XCTAssertNotNil(system.blobs.path(job: id, name: "style0"))
        system.shutdown(grace: 1)

        executor = FakeExecutor()
        executor.releaseAll()
        system = try open()     // the disk has room again
        waitUntil { system.status(id) == .succeeded }
        XCTAssertEqual(executor.started, [id], "the job did not run again")
        XCTAssertEqual(try system.blobs.get(job: id, name: "result"), Array("done:keep me".utf8))
        system.shutdown(grace: 1)
    }

    /// On a full disk the tombstone cannot be written, but the expired job's files are freed.
    func testSweepFreesFilesFirst() throws {
        let system = try open(testConfig(ttl: 60))
        let id = try system.submitTest().record.id
        waitUntil { system.status(id) == .succeeded }
        let expiresAt = try XCTUnwrap(system.snapshot(id: id)?.record.expiresAt)
        store.diskFull = true
        XCTAssertEqual(system.sweep(now: expiresAt), 1)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("jobs/\(id)").path))
        system.shutdown(grace: 1)
    }

    /// Tombstones are capped (the oldest, then the lowest ids, go first).
    func testTombstonesAreBounded() throws {
        var config = testConfig(ttl: 60)
        config.maxTombstones = 3
        let system = try open(config)
        var ids: [String] = []
        for _ in 0..<5 {
            let id = try system.submitTest().record.id
            waitUntil { system.status(id) == .succeeded }
            ids.append(id)
        }
        XCTAssertEqual(system.sweep(now: Date().addingTimeInterval(3600)), 5)
        let tombstones = try FileManager.default.contentsOfDirectory(atPath: dir.appendingPathComponent("tombstones").path)
        XCTAssertEqual(tombstones.count, 3, "\(tombstones)")
        XCTAssertEqual(ids.filter { if case .expired = system.lookup(id: $0) { return true } else { return false } }.count, 3)
        system.shutdown(grace: 1)
    }
}
