import Foundation
import XCTest
@testable import Jobs

/// The job-queue contract on the local data directory (`JobSystem`).
final class LocalJobQueueTests: JobQueueContract {
    var dir: URL!

    override func setUpWithError() throws {
        try super.setUpWithError()
        dir = try makeTempDir()
    }

    override func tearDown() {
        super.tearDown()
        try? FileManager.default.removeItem(at: dir)
    }

    override func open(capacity: Int = 64, workers: Int = 1) throws -> any JobQueue {
        var config = testConfig(capacity: capacity)
        config.workers = workers
        return try JobSystem.open(directory: dir, executor: executor, configuration: config)
    }

    override func storedJobCount() throws -> Int {
        try FileManager.default.contentsOfDirectory(atPath: dir.appendingPathComponent("jobs").path).count
    }

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

    func testRecordFilesAreValidJSONAndNoTempFilesRemain() throws {
        system = try open()
        let a = try system.submitTest("steps")
        let b = try system.submitTest("fail")
        let c = try system.submitTest()
        _ = try system.cancel(id: c.record.id)
        executor.releaseAll()
        waitUntil { self.system.status(b.record.id) == .failed }
        let jobs = dir.appendingPathComponent("jobs")
        var count = 0
        for name in try FileManager.default.contentsOfDirectory(atPath: jobs.path) {
            XCTAssertFalse(name.hasPrefix("."), name)
            let jobDir = jobs.appendingPathComponent(name)
            for file in try FileManager.default.contentsOfDirectory(atPath: jobDir.path) {
                XCTAssertFalse(file.hasPrefix(".tmp-"), file)
            }
            let data = try Data(contentsOf: jobDir.appendingPathComponent("job.json"))
            XCTAssertNoThrow(try JSONSerialization.jsonObject(with: data))
            let record = try JobsJSON.decode(JobRecord.self, from: Array(data))
            XCTAssertEqual(record.id, name)
            XCTAssertEqual(record, system.snapshot(id: name)?.record)
            count += 1
        }
        XCTAssertEqual(count, 2, "the succeeded and the failed job; the canceled queued one is gone")
        XCTAssertEqual(system.status(a.record.id), .succeeded)
    }
}
