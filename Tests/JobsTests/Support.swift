import Foundation
import XCTest
@testable import Jobs

/// A controllable executor. Behaviour comes from the job's `mode` parameter:
/// - `ok` (default): returns "done:" + the content input's bytes.
/// - `block`: waits until `release(id)` / `releaseAll()`, honouring cancellation, then as `ok`.
/// - `steps`: for i in 1...3 waits for `step(id)` then reports i/4; then as `ok`.
/// - `fail`: throws a JobFailure(422, "Corrupt image", "bad bytes").
/// - `crash`: throws a plain error.
/// - `unavailable-once`: the first run throws `JobStoreUnavailable` (its inputs could not be read),
///   later runs are as `ok`.
/// - `stubborn`: blocks until released, ignoring cancellation.
final class FakeExecutor: JobExecutor, @unchecked Sendable {
    struct PlainError: Error {}
    private let cond = NSCondition()
    private var released: Set<String> = []
    private var allReleased = false
    private var stepsAllowed: [String: Int] = [:]
    private(set) var startedOrder: [String] = []
    private(set) var sawCancel: Set<String> = []

    func release(_ id: String) { cond.lock(); released.insert(id); cond.broadcast(); cond.unlock() }
    func releaseAll() { cond.lock(); allReleased = true; cond.broadcast(); cond.unlock() }
    func step(_ id: String) { cond.lock(); stepsAllowed[id, default: 0] += 1; cond.broadcast(); cond.unlock() }
    var started: [String] { cond.lock(); defer { cond.unlock() }; return startedOrder }
    var canceledSeen: Set<String> { cond.lock(); defer { cond.unlock() }; return sawCancel }
    private var idleCalls: [Int] = []     // how many jobs had started at each becameIdle()
    var idleNotifications: [Int] { cond.lock(); defer { cond.unlock() }; return idleCalls }

    func becameIdle() { cond.lock(); idleCalls.append(startedOrder.count); cond.unlock() }

    func execute(_ job: JobRecord, blobs: BlobStore, progress: JobProgress) throws -> JobResult {
        cond.lock()
        startedOrder.append(job.id)
        let runs = startedOrder.filter { $0 == job.id }.count
        cond.unlock()
        let mode = job.parameters["mode"] ?? "ok"
        switch mode {
        case "block", "stubborn":
            cond.lock()
            defer { cond.unlock() }
            while !allReleased && !released.contains(job.id) {
                if mode == "block" && progress.isCanceled {
                    sawCancel.insert(job.id)
                    throw JobCanceled()
                }
                _ = cond.wait(until: Date().addingTimeInterval(0.01))
            }
        case "steps":
            for i in 1...3 {
                cond.lock()
                while (stepsAllowed[job.id] ?? 0) < i && !allReleased {
                    if progress.isCanceled { cond.unlock(); throw JobCanceled() }
                    _ = cond.wait(until: Date().addingTimeInterval(0.01))
                }
                cond.unlock()
                progress.report(Double(i) / 4)
            }
        case "fail":
            throw JobFailure(status: 422, title: "Corrupt image", detail: "bad bytes")
        case "crash":
            throw PlainError()
        case "unavailable-once":
            if runs == 1 { throw JobStoreUnavailable(reason: "the test's store is away for one read") }
        default:
            break
        }
        let content = try blobs.get(job: job.id, name: "content") ?? []
        return JobResult(bytes: Array("done:".utf8) + content, contentType: "image/png")
    }
}

/// Polls `condition` every 10 ms for up to `timeout` seconds.
func waitUntil(_ timeout: Double = 20, file: StaticString = #filePath, line: UInt = #line,
               _ condition: () -> Bool) {
    let deadline = Date().addingTimeInterval(timeout)
    while !condition() {
        if Date() > deadline {
            XCTFail("condition not met within \(timeout) s", file: file, line: line)
            return
        }
        Thread.sleep(forTimeInterval: 0.01)
    }
}

func makeTempDir() throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("jobs-test-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

func testConfig(capacity: Int = 64, ttl: Double = 3600) -> JobSystem.Configuration {
    var c = JobSystem.Configuration()
    c.queueCapacity = capacity
    c.ttl = ttl
    c.sweepInterval = 0
    c.logger.logLevel = .critical
    return c
}

extension JobQueue {
    /// Submits a job whose content input is `content` and whose executor mode is `mode`.
    func submitTest(_ mode: String = "ok", content: String = "c", key: String? = nil, digest: String? = nil) throws -> JobSnapshot {
        try submit(inputs: [.bytes("content", Array(content.utf8)), .bytes("style0", [1, 2, 3])],
                   styleIDs: [], parameters: ["mode": mode],
                   idempotencyKey: key, requestDigest: digest).snapshot
    }

    func status(_ id: String) -> JobStatus? { snapshot(id: id)?.record.status }

    /// The job's 1-based queue position, nil unless queued.
    func position(_ id: String) -> Int? { snapshot(id: id)?.queuePosition }
}
