import Foundation
import XCTest
@testable import Jobs

/// What every job-queue backend must do, written once against `JobQueue`. Each backend's test
/// class opens its own queue (`open`) and calls every `check...` from a test method of its own.
class JobQueueContract: XCTestCase {
    var executor: FakeExecutor!
    var system: (any JobQueue)!

    /// Opens the backend under test with the fake executor.
    func open(capacity: Int = 64, workers: Int = 1) throws -> any JobQueue { fatalError("a backend's test class opens its queue") }
    /// Jobs the backend has stored (records, not tombstones).
    func storedJobCount() throws -> Int { fatalError("a backend's test class counts its records") }
    /// True when every progress report reaches event streams as its own event.
    var exactProgressEvents: Bool { true }

    override func setUpWithError() throws {
        executor = FakeExecutor()
    }

    override func tearDown() {
        executor?.releaseAll()
        system?.shutdown(grace: 5)
        system = nil
    }

    func checkJobsRunInFIFOOrderWithQueuePositions() throws {
        system = try open()
        let a = try system.submitTest("block", content: "a")
        waitUntil { self.system.status(a.record.id) == .running }
        let b = try system.submitTest("ok", content: "b")
        let c = try system.submitTest("ok", content: "c")
        XCTAssertEqual(b.queuePosition, 1)
        XCTAssertEqual(c.queuePosition, 2)
        XCTAssertNil(system.position(a.record.id))
        XCTAssertNil(system.snapshot(id: a.record.id)?.queuePosition)
        XCTAssertEqual(system.position(b.record.id), 1)
        XCTAssertEqual(system.snapshot(id: c.record.id)?.queuePosition, 2)
        XCTAssertEqual(system.stats().queued, 2)
        XCTAssertEqual(system.stats().running, 1)

        executor.release(a.record.id)
        waitUntil { self.system.status(c.record.id) == .succeeded }
        XCTAssertEqual(executor.started, [a, b, c].map(\.record.id))
        for (job, content) in [(a, "a"), (b, "b"), (c, "c")] {
            let r = try XCTUnwrap(try system.result(id: job.record.id))
            XCTAssertEqual(try Data(contentsOf: r.file), Data("done:\(content)".utf8))
            XCTAssertEqual(r.record.resultContentType, "image/png")
            XCTAssertEqual(r.record.resultSize, 5 + content.utf8.count)
            XCTAssertEqual(r.record.resultSHA256, SHA256Digest.hex(Array("done:\(content)".utf8)))
            XCTAssertEqual(r.record.progress, 1)
            XCTAssertEqual(r.record.attempts, 1)
            XCTAssertNotNil(r.record.startedAt)
            XCTAssertNotNil(r.record.finishedAt)
            XCTAssertNotNil(r.record.expiresAt)
            // Inputs are removed once the job has finished.
            XCTAssertNil(system.blobs.path(job: job.record.id, name: "content"))
        }
        let stats = system.stats()
        XCTAssertEqual(stats.finished[.succeeded], 3)
        XCTAssertEqual(stats.durationCount, 3)
        XCTAssertEqual(stats.queued, 0)
    }

    /// The executor hears when the queue drains (the service frees engine memory then), not between
    /// queued jobs.
    func checkExecutorIsToldWhenTheQueueDrains() throws {
        system = try open()
        let a = try system.submitTest("block", content: "a")
        waitUntil { self.system.status(a.record.id) == .running }
        let b = try system.submitTest("ok", content: "b")
        executor.release(a.record.id)
        waitUntil { self.system.status(b.record.id) == .succeeded }
        waitUntil { !self.executor.idleNotifications.isEmpty }
        XCTAssertEqual(executor.idleNotifications, [2], "told once, after both jobs")
        let c = try system.submitTest("ok", content: "c")
        waitUntil { self.system.status(c.record.id) == .succeeded }
        waitUntil { self.executor.idleNotifications.count == 2 }
        XCTAssertEqual(executor.idleNotifications, [2, 3])
    }

    func checkIDsAreRandomURLSafeAndLongEnough() throws {
        system = try open()
        var ids = Set<String>()
        for _ in 0..<20 {
            let id = try system.submitTest().record.id
            XCTAssertGreaterThanOrEqual(id.count, 16) // >= 96 bits of base64url
            XCTAssertTrue(id.allSatisfy { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }, id)
            ids.insert(id)
        }
        XCTAssertEqual(ids.count, 20)
    }

    func checkQueueFullAtCapacity() throws {
        system = try open(capacity: 2)
        let a = try system.submitTest("block")
        waitUntil { self.system.status(a.record.id) == .running }
        let b = try system.submitTest()
        _ = try system.submitTest()
        XCTAssertTrue(system.isFull)
        XCTAssertThrowsError(try system.submitTest()) { error in
            let full = error as? QueueFull
            XCTAssertNotNil(full, "\(error)")
            XCTAssertGreaterThanOrEqual(full?.retryAfter ?? 0, 1)
            XCTAssertEqual(full?.capacity, 2)
        }
        // Nothing was left behind by the refused submission.
        XCTAssertEqual(try storedJobCount(), 3)
        // Freeing a slot lets the next submission in.
        guard case .canceled = try system.cancel(id: b.record.id) else { return XCTFail("not canceled") }
        XCTAssertNoThrow(try system.submitTest())
    }

    func checkCancelQueuedJob() throws {
        system = try open()
        let a = try system.submitTest("block")
        waitUntil { self.system.status(a.record.id) == .running }
        let b = try system.submitTest()
        let c = try system.submitTest()
        XCTAssertNotNil(system.blobs.path(job: b.record.id, name: "content"))
        guard case .canceled(let snap) = try system.cancel(id: b.record.id) else { return XCTFail("not canceled") }
        XCTAssertEqual(snap.record.status, .canceled)
        XCTAssertNil(snap.queuePosition)
        XCTAssertNil(system.blobs.path(job: b.record.id, name: "content"))
        XCTAssertNil(system.blobs.path(job: b.record.id, name: "style0"))
        XCTAssertEqual(system.position(c.record.id), 1)
        // The canceled queued job is gone entirely, in memory and on disk.
        XCTAssertEqual(try system.lookup(id: b.record.id), .notFound)
        XCTAssertEqual(try storedJobCount(), 2)
        XCTAssertEqual(try system.cancel(id: b.record.id), .notFound)
        XCTAssertEqual(try system.cancel(id: "nope"), .notFound)
        executor.releaseAll()
        waitUntil { self.system.status(c.record.id) == .succeeded }
        XCTAssertFalse(executor.started.contains(b.record.id))
    }

    func checkCancelRunningJob() throws {
        system = try open()
        let a = try system.submitTest("block")
        let b = try system.submitTest("ok")
        waitUntil { self.system.status(a.record.id) == .running }
        guard case .cancelRequested(let snap) = try system.cancel(id: a.record.id) else { return XCTFail("not requested") }
        XCTAssertEqual(snap.record.id, a.record.id)
        waitUntil { self.system.status(a.record.id) == .canceled }
        XCTAssertTrue(executor.canceledSeen.contains(a.record.id))
        XCTAssertNil(system.blobs.path(job: a.record.id, name: "content"))
        XCTAssertNil(system.blobs.path(job: a.record.id, name: JobLifecycle.resultBlobName))
        XCTAssertNil(try system.result(id: a.record.id))
        // The worker moves on to the next job.
        waitUntil { self.system.status(b.record.id) == .succeeded }
        XCTAssertEqual(system.stats().finished[.canceled], 1)
    }

    func checkFailureIsRecordedWithStatusAndDetail() throws {
        system = try open()
        let f = try system.submitTest("fail")
        let c = try system.submitTest("crash")
        waitUntil { self.system.status(c.record.id)?.isTerminal == true }
        let failed = try XCTUnwrap(system.snapshot(id: f.record.id)?.record)
        XCTAssertEqual(failed.status, .failed)
        XCTAssertEqual(failed.error, JobFailure(status: 422, title: "Corrupt image", detail: "bad bytes"))
        let crashed = try XCTUnwrap(system.snapshot(id: c.record.id)?.record)
        XCTAssertEqual(crashed.status, .failed)
        XCTAssertEqual(crashed.error?.status, 500)
        XCTAssertNil(try system.result(id: f.record.id))
        XCTAssertEqual(system.stats().finished[.failed], 2)
    }

    func checkProgressIsVisibleAndWaitForChangeWakesOnChange() async throws {
        system = try open()
        let job = try system.submitTest("steps")
        let id = job.record.id
        let running = await system.waitForChange(id: id, after: job.version, timeout: 20)
        var snap = try XCTUnwrap(running)
        if snap.record.status == .queued {
            let next = await system.waitForChange(id: id, after: snap.version, timeout: 20)
            snap = try XCTUnwrap(next)
        }
        XCTAssertEqual(snap.record.status, .running)
        XCTAssertEqual(snap.record.progress, 0)

        let seenVersion = snap.version
        let waiter = Task { await self.system.waitForChange(id: id, after: seenVersion, timeout: 30) }
        // Let the waiter register; it must not return before the change.
        try await Task.sleep(nanoseconds: 100_000_000)
        let start = Date()
        executor.step(id)
        let changedValue = await waiter.value
        let changed = try XCTUnwrap(changedValue)
        XCTAssertLessThan(Date().timeIntervalSince(start), 20)
        XCTAssertEqual(changed.record.progress, 0.25)
        XCTAssertEqual(system.snapshot(id: id)?.record.progress, 0.25)
        XCTAssertGreaterThan(changed.version, snap.version)
    }

    func checkWaitForChangeTimesOutAndReturnsAtOnceWhenFinished() async throws {
        system = try open()
        let blocker = try system.submitTest("block")
        waitUntil { self.system.status(blocker.record.id) == .running }
        let queued = try system.submitTest()
        let start = Date()
        let snap = await system.waitForChange(id: queued.record.id, timeout: 0.3)
        XCTAssertGreaterThanOrEqual(Date().timeIntervalSince(start), 0.25)
        XCTAssertEqual(snap?.record.status, .queued)
        // Unknown job: nil at once.
        let unknown = await system.waitForChange(id: "missing", timeout: 10)
        XCTAssertNil(unknown)
        // Finished job: at once, even with a long timeout.
        executor.releaseAll()
        while system.status(queued.record.id) != .succeeded {
            _ = await system.waitForChange(id: queued.record.id, timeout: 5)
        }
        let t0 = Date()
        let done = await system.waitForChange(id: queued.record.id, timeout: 60)
        XCTAssertEqual(done?.record.status, .succeeded)
        XCTAssertLessThan(Date().timeIntervalSince(t0), 5)
    }

    func checkWaitForChangeReturnsWhenTaskCanceled() async throws {
        system = try open()
        let job = try system.submitTest("block")
        let task = Task { await self.system.waitForChange(id: job.record.id, timeout: 600) }
        try await Task.sleep(nanoseconds: 50_000_000)
        let t0 = Date()
        task.cancel()
        _ = await task.value
        XCTAssertLessThan(Date().timeIntervalSince(t0), 10)
    }

    func checkEventsStreamYieldsChangesInOrderAndEndsWithTerminalState() async throws {
        system = try open()
        let blocker = try system.submitTest("block")
        let job = try system.submitTest("steps")
        let id = job.record.id
        let stream = system.events(id: id)
        let collector = Task { () -> [JobSnapshot] in
            var seen: [JobSnapshot] = []
            for await s in stream { seen.append(s) }
            return seen
        }
        try await Task.sleep(nanoseconds: 50_000_000)
        executor.release(blocker.record.id)
        waitUntil { self.system.status(id) == .running }
        for i in 1...3 {
            executor.step(id)
            if !exactProgressEvents { waitUntil { (self.system.snapshot(id: id)?.record.progress ?? 1) >= Double(i) / 4 } }
        }
        let seen = await collector.value
        XCTAssertEqual(seen.first?.record.status, .queued)
        XCTAssertEqual(seen.last?.record.status, .succeeded)
        XCTAssertTrue(seen.contains { $0.record.status == .running })
        let order: [JobStatus: Int] = [.queued: 0, .running: 1, .succeeded: 2]
        for (prev, next) in zip(seen, seen.dropFirst()) {
            XCTAssertLessThan(prev.version, next.version)
            XCTAssertLessThanOrEqual(order[prev.record.status]!, order[next.record.status]!)
            if prev.record.status == next.record.status {
                XCTAssertLessThanOrEqual(prev.record.progress, next.record.progress)
            }
        }
        let progresses = seen.filter { $0.record.status == .running }.map(\.record.progress)
        if exactProgressEvents {
            XCTAssertEqual(progresses, [0, 0.25, 0.5, 0.75])
        } else {
            XCTAssertEqual(progresses, progresses.sorted(), "progress never goes back")
            XCTAssertEqual(progresses.first, 0)
        }
        // A finished job's stream yields its state once and ends.
        var again: [JobSnapshot] = []
        for await s in system.events(id: id) { again.append(s) }
        XCTAssertEqual(again.map(\.record.status), [.succeeded])
        var none = 0
        for await _ in system.events(id: "unknown") { none += 1 }
        XCTAssertEqual(none, 0)
    }

    func checkEventsForCanceledQueuedJobEnd() async throws {
        system = try open()
        let blocker = try system.submitTest("block")
        waitUntil { self.system.status(blocker.record.id) == .running }
        let job = try system.submitTest()
        let stream = system.events(id: job.record.id)
        _ = try system.cancel(id: job.record.id)
        var statuses: [JobStatus] = []
        for await s in stream { statuses.append(s.record.status) }
        XCTAssertEqual(statuses, [.queued, .canceled])
    }

    func checkInputFilesAreMovedIn() throws {
        system = try open()
        let spool = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: spool) }
        let content = spool.appendingPathComponent("upload-1")
        try Data("from-file".utf8).write(to: content)
        let job = try system.submit(inputs: [.file("content", content)], parameters: ["mode": "block"]).snapshot
        XCTAssertFalse(FileManager.default.fileExists(atPath: content.path), "the spooled file is consumed")
        let stored = try XCTUnwrap(system.blobs.path(job: job.record.id, name: "content"))
        XCTAssertEqual(try Data(contentsOf: stored), Data("from-file".utf8))
        XCTAssertEqual(job.record.inputs, ["content"])
        XCTAssertThrowsError(try system.submit(inputs: [.bytes("../evil", [1])]))
        XCTAssertThrowsError(try system.submit(inputs: [.bytes("job.json", [1])]))
        XCTAssertThrowsError(try system.submit(inputs: [.bytes("a", [1]), .bytes("a", [2])]))
    }

    func checkShutdownLetsRunningJobFinishWithinGraceAndRefusesNewJobs() throws {
        system = try open()
        let a = try system.submitTest("block")
        let b = try system.submitTest()
        waitUntil { self.system.status(a.record.id) == .running }
        DispatchQueue.global().asyncAfter(deadline: .now() + 0.2) { self.executor.release(a.record.id) }
        system.shutdown(grace: 30)
        XCTAssertEqual(system.status(a.record.id), .succeeded)
        XCTAssertEqual(system.status(b.record.id), .queued, "no new job is taken during shutdown")
        XCTAssertThrowsError(try system.submitTest()) { XCTAssertTrue($0 is JobSystemShuttingDown) }
    }

    func checkSeveralWorkersRunJobsInParallel() throws {
        system = try open(workers: 2)
        let a = try system.submitTest("block")
        let b = try system.submitTest("block")
        let c = try system.submitTest("ok")
        waitUntil { self.system.status(a.record.id) == .running && self.system.status(b.record.id) == .running }
        XCTAssertEqual(system.stats().running, 2)
        XCTAssertEqual(system.position(c.record.id), 1)
        executor.release(b.record.id)
        waitUntil { self.system.status(c.record.id) == .succeeded }
        XCTAssertEqual(system.status(a.record.id), .running)
    }

    func checkStatsCountOutcomes() throws {
        system = try open()
        _ = try system.submitTest()
        _ = try system.submitTest("fail")
        let last = try system.submitTest()
        waitUntil { self.system.status(last.record.id) == .succeeded }
        // A database backend counts a job once its final record is committed, just after others see it.
        waitUntil { self.system.stats().durationCount >= 3 }
        let stats = system.stats()
        XCTAssertEqual(stats.finished[.succeeded], 2)
        XCTAssertEqual(stats.finished[.failed], 1)
        XCTAssertEqual(stats.durationCount, 3)
        XCTAssertEqual(stats.recentDurations.count, 3)
        XCTAssertEqual(stats.capacity, 64)
    }

    /// Many short jobs through several workers all finish, each started once. (The lease race of
    /// the database backend has its own test, which forces the overlap.)
    func checkABurstOfJobsThroughSeveralWorkersFinishesOnce() throws {
        system = try open(workers: 3)
        var ids: [String] = []
        for i in 0..<30 { ids.append(try system.submitTest(content: "\(i)").record.id) }
        waitUntil(30) { ids.allSatisfy { self.system.status($0) == .succeeded } }
        for id in ids { XCTAssertEqual(system.snapshot(id: id)?.record.attempts, 1, id) }
        XCTAssertEqual(executor.started.count, 30)
    }
}
