import Foundation

/// What the service needs from a job system; `JobSystem` (one process, local data directory)
/// and the PostgreSQL backend (many replicas on one database) both provide it.
public protocol JobQueue: AnyObject, Sendable {
    /// The blob store holding inputs and results (executors read inputs from it).
    var blobs: BlobStore { get }
    /// Accepts a job durably, or returns the earlier job with the same idempotency key and
    /// digest. Throws `QueueFull`, `IdempotencyKeyReused`, `JobSystemShuttingDown`,
    /// `InvalidBlobName` or a storage error. Input files are consumed only when a job is created.
    func submit(inputs: [JobInput], styleIDs: [String], parameters: [String: String],
                idempotencyKey: String?, requestDigest: String?, owner: String?) throws -> SubmitResult
    /// The job now, or nil when unknown (deleted, expired, never existed).
    func snapshot(id: String) -> JobSnapshot?
    /// The job, its tombstone (expired: answer 410), or not found (404). Throws
    /// `JobStoreUnavailable` when the store cannot be reached.
    func lookup(id: String) throws -> JobLookup
    /// True when `lookup` answers from memory without waiting on I/O, so a caller may run it on a
    /// thread that serves sockets; false when it may wait on a database round trip.
    var lookupIsInstant: Bool { get }
    /// A local file holding a succeeded job's result, with its record; nil otherwise.
    func result(id: String) throws -> (record: JobRecord, file: URL)?
    /// Gauges and counters for metrics.
    func stats() -> JobStats
    /// True when `submit` would currently be refused with `QueueFull`.
    var isFull: Bool { get }
    /// True when the backend can take and serve jobs (its storage is reachable).
    var isAvailable: Bool { get }
    /// Suspends until the job changes after `version` (default: its version now) or `timeout`
    /// seconds pass, then returns it; nil when it is unknown or gets deleted meanwhile.
    func waitForChange(id: String, after version: UInt64?, timeout: Double) async -> JobSnapshot?
    /// The job's states: the current one, then every change; finishes after a terminal state.
    func events(id: String) -> AsyncStream<JobSnapshot>
    /// Cancels a queued job, asks a running one to stop, or deletes a finished one.
    func cancel(id: String) throws -> CancelOutcome
    /// Removes expired jobs (leaving tombstones); returns how many expired.
    @discardableResult func sweep(now: Date) -> Int
    /// Stops taking jobs, gives running jobs `grace` seconds, then hands them back to the queue.
    func shutdown(grace: Double)
}

extension JobQueue {
    /// `waitForChange` from the job's version now.
    public func waitForChange(id: String, timeout: Double) async -> JobSnapshot? {
        await waitForChange(id: id, after: nil, timeout: timeout)
    }

    /// `submit` without styles, parameters, idempotency or owner unless given.
    public func submit(inputs: [JobInput], styleIDs: [String] = [], parameters: [String: String] = [:],
                       idempotencyKey: String? = nil, requestDigest: String? = nil) throws -> SubmitResult {
        try submit(inputs: inputs, styleIDs: styleIDs, parameters: parameters, idempotencyKey: idempotencyKey,
                   requestDigest: requestDigest, owner: nil)
    }
}

/// One input of a submission: a blob name (`content`, `style0`, ...) and where its bytes are.
public struct JobInput: Sendable {
    /// Where an input's bytes are.
    public enum Source: Sendable {
        /// A file (e.g. a spooled upload) that the job system moves into its blob store.
        case file(URL)
        /// Bytes in memory.
        case bytes([UInt8])
    }
    /// The blob name: letters, digits, `-`, `_`, `.` (not leading), at most 128 bytes.
    public var name: String
    /// The data.
    public var source: Source
    /// An input to be moved in from a file.
    public static func file(_ name: String, _ url: URL) -> JobInput { JobInput(name: name, source: .file(url)) }
    /// An input held in memory.
    public static func bytes(_ name: String, _ bytes: [UInt8]) -> JobInput { JobInput(name: name, source: .bytes(bytes)) }
}

/// What `submit` returned: the job, and whether it was created now (false: idempotent replay).
public struct SubmitResult: Sendable, Equatable {
    /// The job as it is now.
    public var snapshot: JobSnapshot
    /// True when this call created the job; false when an earlier job with the same
    /// idempotency key and digest was returned (the caller's input files were not consumed).
    public var created: Bool
    /// A result.
    public init(snapshot: JobSnapshot, created: Bool) {
        self.snapshot = snapshot
        self.created = created
    }
}

/// Counters and gauges for metrics.
public struct JobStats: Sendable, Equatable {
    /// Jobs waiting in the queue (queue depth).
    public var queued: Int
    /// Jobs being executed.
    public var running: Int
    /// The queue's capacity.
    public var capacity: Int
    /// Jobs that reached `succeeded`, `failed` or `canceled` since this process started.
    public var finished: [JobStatus: Int]
    /// Number of executed jobs whose duration is summed in `durationSum`.
    public var durationCount: Int
    /// Total seconds spent executing finished jobs since start.
    public var durationSum: Double
    /// The most recent execution durations (seconds, oldest first, at most 100).
    public var recentDurations: [Double]
    /// Long polls (`waitForChange`) waiting right now.
    public var waiting: Int = 0
    /// Gauges and counters.
    public init(queued: Int, running: Int, capacity: Int, finished: [JobStatus: Int], durationCount: Int,
                durationSum: Double, recentDurations: [Double], waiting: Int) {
        self.queued = queued
        self.running = running
        self.capacity = capacity
        self.finished = finished
        self.durationCount = durationCount
        self.durationSum = durationSum
        self.recentDurations = recentDurations
        self.waiting = waiting
    }
}

