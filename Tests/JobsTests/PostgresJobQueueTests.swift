import Foundation
@testable import JobsPostgres
import Postgres
import XCTest
@testable import Jobs

/// The job-queue contract on PostgreSQL (`PostgresJobQueue`), each test in a database of its own.
final class PostgresJobQueueTests: JobQueueContract {
    var database: ScratchDatabase!
    var cache: URL!

    override func setUpWithError() throws {
        try super.setUpWithError()
        database = try ScratchDatabase()
        cache = try makeTempDir()
    }

    override func tearDown() {
        super.tearDown()
        database?.drop()
        if let cache { try? FileManager.default.removeItem(at: cache) }
    }

    override func open(capacity: Int = 64, workers: Int = 1) throws -> any JobQueue {
        var config = PostgresJobQueue.Configuration()
        config.queueCapacity = capacity
        config.workers = workers
        config.sweepInterval = 0
        config.pollInterval = 0.5
        config.logger.logLevel = .critical
        let db = try JobDatabase(url: database.url, poolSize: 4, startTimeout: 5, logger: config.logger)
        return try PostgresJobQueue(database: db, cacheDirectory: cache, executor: executor, configuration: config)
    }

    override func storedJobCount() throws -> Int {
        try PostgresConnection(url: database.url).query("SELECT count(*) AS n FROM stylist_jobs")[0].int("n") ?? -1
    }

    /// Progress reaches other replicas as database writes, which watchers re-read: quick
    /// successive reports may arrive as one.
    override var exactProgressEvents: Bool { false }

    func testJobsRunInFIFOOrderWithQueuePositions() throws { try checkJobsRunInFIFOOrderWithQueuePositions() }
    func testExecutorIsToldWhenTheQueueDrains() throws { try checkExecutorIsToldWhenTheQueueDrains() }
    func testIDsAreRandomURLSafeAndLongEnough() throws { try checkIDsAreRandomURLSafeAndLongEnough() }
    func testQueueFullAtCapacity() throws { try checkQueueFullAtCapacity() }
    func testCancelQueuedJob() throws { try checkCancelQueuedJob() }
    func testABurstOfJobsThroughSeveralWorkersFinishesOnce() throws { try checkABurstOfJobsThroughSeveralWorkersFinishesOnce() }
    func testCancelRunningJob() throws { try checkCancelRunningJob() }
    func testFailureIsRecordedWithStatusAndDetail() throws { try checkFailureIsRecordedWithStatusAndDetail() }
    func testProgressIsVisibleAndWaitForChangeWakesOnChange() async throws { try await checkProgressIsVisibleAndWaitForChangeWakesOnChange() }
    func testWaitForChangeTimesOutAndReturnsAtOnceWhenFinished() async throws { try await checkWaitForChangeTimesOutAndReturnsAtOnceWhenFinished() }
    func testWaitForChangeReturnsWhenTaskCanceled() async throws { try await checkWaitForChangeReturnsWhenTaskCanceled() }
    func testEventsStreamYieldsChangesInOrderAndEndsWithTerminalState() async throws { try await checkEventsStreamYieldsChangesInOrderAndEndsWithTerminalState() }
    func testEventsForCanceledQueuedJobEnd() async throws { try await checkEventsForCanceledQueuedJobEnd() }
    func testInputFilesAreMovedIn() throws { try checkInputFilesAreMovedIn() }
    func testShutdownLetsRunningJobFinishWithinGraceAndRefusesNewJobs() throws { try checkShutdownLetsRunningJobFinishWithinGraceAndRefusesNewJobs() }
    func testSeveralWorkersRunJobsInParallel() throws { try checkSeveralWorkersRunJobsInParallel() }
    func testStatsCountOutcomes() throws { try checkStatsCountOutcomes() }

    /// Lease renewals running back to back while workers claim: a renewal that overlaps a claim's
    /// commit must not take the new claim for lost (the job would then sit until its lease lapsed).
    func testLeaseRenewalsOverlappingClaimsLoseNoJob() throws {
        system = try open(workers: 3)
        let queue = try XCTUnwrap(system as? PostgresJobQueue)
        let stop = Locked(false)
        let renewer = Thread {
            while !stop.value { try? queue.renewLeases() }
        }
        renewer.start()
        defer { stop.value = true }
        var ids: [String] = []
        for i in 0..<40 { ids.append(try system.submitTest(content: "\(i)").record.id) }
        waitUntil(15) { ids.allSatisfy { self.system.status($0) == .succeeded } }
        for id in ids { XCTAssertEqual(system.snapshot(id: id)?.record.attempts, 1, id) }
    }

    /// A job whose executor finds the database away (`JobStoreUnavailable`) runs again on the same
    /// claim once it is back, and succeeds: an accepted job is not failed by an outage.
    func testAJobThatFindsTheStoreUnavailableRunsAgainAndSucceeds() throws {
        system = try open()
        let id = try system.submitTest("unavailable-once", content: "x").record.id
        waitUntil { [.succeeded, .failed].contains(self.system.status(id)) }
        XCTAssertEqual(system.status(id), .succeeded, "\(String(describing: system.snapshot(id: id)?.record.error))")
        XCTAssertEqual(executor.started, [id, id], "the executor ran twice")
        let result = try XCTUnwrap(try system.result(id: id))
        XCTAssertEqual(try Data(contentsOf: result.file), Data("done:x".utf8))
        XCTAssertEqual(result.record.attempts, 1, "a retry on the same claim is not a new attempt")
    }
}

/// A value behind a lock, for a flag shared with a thread.
final class Locked<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: T
    init(_ value: T) { stored = value }
    var value: T {
        get { lock.withLock { stored } }
        set { lock.withLock { stored = newValue } }
    }
}
