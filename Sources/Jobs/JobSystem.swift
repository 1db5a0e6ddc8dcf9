import Foundation
import Logging

/// The job system: a durable bounded FIFO queue of jobs, worker threads running an injected
/// `JobExecutor`, cancellation, watchers, restart recovery, TTL sweeping and idempotency.
///
/// Thread-safety: all state sits behind one condition lock; disk writes of records are
/// serialized by a second lock taken before it, and every write saves the latest in-memory
/// state, so the file on disk never goes backwards. Workers are dedicated `Thread`s, never
/// the Swift concurrency pool. Watchers (`waitForChange`, `events`) suspend on continuations.
public final class JobSystem: JobQueue, @unchecked Sendable {
    /// Settings; the defaults are the product's defaults.
    public struct Configuration: Sendable {
        /// Maximum number of queued (not yet running) jobs; `submit` throws `QueueFull` beyond.
        public var queueCapacity: Int = 64
        /// Number of worker threads (jobs run in parallel).
        public var workers: Int = 1
        /// Seconds a finished job (record, result) is kept.
        public var ttl: Double = 24 * 3600
        /// Seconds a tombstone of an expired job is kept (answers 410, then 404).
        public var tombstoneTTL: Double = 7 * 24 * 3600
        /// Most tombstones kept; the oldest go first beyond it (a tombstone's only use is a 410).
        public var maxTombstones = 10_000
        /// Seconds between sweeps for expired jobs (0: only the sweep at start; call `sweep()`).
        public var sweepInterval: Double = 60
        /// A job found `running` at start (the process died while running it) that already
        /// started this many times is failed instead of run again (a crash loop breaker).
        public var maxAttempts: Int = 3
        /// Minimum seconds between persisting progress to the record (watchers see all).
        public var progressPersistInterval: Double = 0.25
        /// Assumed job duration for `Retry-After` until some job has finished.
        public var defaultJobSeconds: Double = 10
        /// Stack size of worker threads.
        public var workerStackSize: Int = 16 << 20
        /// Where job transitions are logged (one line each).
        public var logger: Logger = Logger(label: "stylist.jobs")
        /// Called (on the worker thread) after each job reaches a terminal state by running.
        public var onFinished: (@Sendable (JobRecord) -> Void)?
        /// The defaults.
        public init() {}
    }

    /// The name of the result blob of a succeeded job.
    public static let resultBlobName = JobLifecycle.resultBlobName

    /// The record store.
    public let jobStore: JobStore
    /// The blob store (executors read inputs from it; the app streams results from it).
    public let blobs: BlobStore
    /// The settings in force.
    public let configuration: Configuration

    let executor: JobExecutor
    var logger: Logger { configuration.logger }

    /// A job a worker of this process is running.
    final class RunState {
        let id: String
        let startedUptime: Double
        var lastPersist: Double
        var cancelRequested = false
        var abandoned = false
        init(id: String, now: Double) {
            self.id = id
            startedUptime = now
            lastPersist = now
        }
    }

    /// A job's record with its change counter.
    struct Entry {
        var record: JobRecord
        var version: UInt64
    }

    // Lock order: writeLock, then cond, then the watchers' own lock. Everything below is
    // guarded by cond; the work in `deferred` runs after cond is released.
    let writeLock = NSLock()
    let cond = NSCondition()
    let watchers = JobWatchers()
    var entries: [String: Entry] = [:]
    var queue: [String] = []
    var running: [String: RunState] = [:]
    var idempotency: [String: String] = [:]
    var tombstones: [String: JobTombstone] = [:]
    var versionCounter: UInt64 = 0
    var nextSequence: UInt64 = 1
    var stopping = false
    var finishedCounts: [JobStatus: Int] = [.succeeded: 0, .failed: 0, .canceled: 0]
    var recentDurations: [Double] = []
    var durationCount = 0
    var durationSum = 0.0
    var deferred: [() -> Void] = []
    var sweeper: DispatchSourceTimer?

    // MARK: Opening

    /// Opens the job system on a local data directory (`DATA/jobs`, `DATA/tombstones`),
    /// recovers queued and interrupted jobs, sweeps expired ones and starts the workers and the
    /// sweeper. Call `shutdown(grace:)` before dropping it (the workers keep it alive).
    public static func open(directory: URL, executor: JobExecutor,
                            configuration: Configuration = Configuration()) throws -> JobSystem {
        let jobs = directory.appendingPathComponent("jobs")
        let store = try LocalJobStore(root: jobs, tombstoneRoot: directory.appendingPathComponent("tombstones"))
        let blobs = try LocalBlobStore(root: jobs)
        return try JobSystem(jobStore: store, blobStore: blobs, executor: executor, configuration: configuration)
    }

    /// Opens the job system on any stores: loads every record, re-queues `queued` and
    /// `running` (interrupted) jobs in submission order, then starts workers and the sweeper.
    public init(jobStore: JobStore, blobStore: BlobStore, executor: JobExecutor,
                configuration: Configuration = Configuration()) throws {
        self.jobStore = jobStore
        self.blobs = blobStore
        self.executor = executor
        var config = configuration
        config.queueCapacity = max(1, config.queueCapacity)
        config.workers = max(1, config.workers)
        self.configuration = config

        let now = JobsJSON.now()
        let records = try jobStore.loadAll().sorted {
            ($0.sequence, $0.createdAt) < ($1.sequence, $1.createdAt)
        }
        for t in try jobStore.loadTombstones() { tombstones[t.id] = t }
        for var record in records {
            nextSequence = max(nextSequence, record.sequence + 1)
            switch record.status {
            case .queued:
                queue.append(record.id)
            case .running where record.attempts >= config.maxAttempts:
                record = JobLifecycle.abandoned(record, ttl: config.ttl)
                try jobStore.save(record)
                for name in record.inputs { try? blobStore.delete(job: record.id, name: name) }
                logger.warning("job failed after interruptions", metadata: ["job": "\(record.id)", "attempts": "\(record.attempts)"])
            case .running:
                record = JobLifecycle.requeued(record)
                try jobStore.save(record)
                queue.append(record.id)
                logger.info("job re-queued after interruption", metadata: ["job": "\(record.id)", "attempts": "\(record.attempts)"])
            case .succeeded, .failed, .canceled:
                if record.expiresAt == nil {
                    record.expiresAt = JobsJSON.normalize((record.finishedAt ?? now).addingTimeInterval(config.ttl))
                }
            }
            if let key = record.idempotencyKey { idempotency[key] = record.id }
            versionCounter += 1
            entries[record.id] = Entry(record: record, version: versionCounter)
        }
        if !queue.isEmpty {
            logger.info("recovered queued jobs", metadata: ["count": "\(queue.count)"])
        }
        sweep()
        if config.sweepInterval > 0 {
            let timer = DispatchSource.makeTimerSource(queue: DispatchQueue(label: "stylist.jobs.sweeper"))
            timer.schedule(deadline: .now() + config.sweepInterval, repeating: config.sweepInterval)
            timer.setEventHandler { [weak self] in self?.sweep() }
            timer.resume()
            sweeper = timer
        }
        for n in 0..<config.workers {
            let thread = Thread { [self] in workerLoop() }
            thread.name = "stylist-worker-\(n)"
            thread.stackSize = config.workerStackSize
            thread.start()
        }
    }

    // MARK: Submitting

    /// Accepts a job: moves/writes its inputs and writes its record durably (fsync'd) before
    /// returning, then queues it. With an `idempotencyKey` already used by a live job, returns
    /// that job (`created == false`) when `requestDigest` matches, else throws
    /// `IdempotencyKeyReused`. Throws `QueueFull`, `JobSystemShuttingDown`, `InvalidBlobName`
    /// or a `StorageError`. Input files are consumed only when a job is created; whatever is
    /// left at the given URLs afterwards is the caller's to remove.
    public func submit(inputs: [JobInput], styleIDs: [String] = [], parameters: [String: String] = [:],
                       idempotencyKey: String? = nil, requestDigest: String? = nil, owner: String? = nil) throws -> SubmitResult {
        try JobLifecycle.checkInputNames(inputs)
        writeLock.lock()
        defer { writeLock.unlock() }

        cond.lock()
        if stopping {
            cond.unlock()
            throw JobSystemShuttingDown()
        }
        if let key = idempotencyKey, let existing = idempotency[key], let entry = entries[existing] {
            let snapshot = snapshotLocked(entry)
            cond.unlock()
            if entry.record.requestDigest == requestDigest {
                return SubmitResult(snapshot: snapshot, created: false)
            }
            throw IdempotencyKeyReused(key: key, existingJobID: existing)
        }
        if queue.count >= configuration.queueCapacity {
            let retry = retryAfterLocked()
            cond.unlock()
            throw QueueFull(retryAfter: retry, capacity: configuration.queueCapacity)
        }
        var id = randomToken(bytes: 16)
        while entries[id] != nil || tombstones[id] != nil { id = randomToken(bytes: 16) }
        let sequence = nextSequence
        nextSequence += 1
        cond.unlock()

        let record = JobRecord(id: id, createdAt: JobsJSON.now(), parameters: parameters,
                               inputs: inputs.map(\.name), styleIDs: styleIDs,
                               idempotencyKey: idempotencyKey, requestDigest: requestDigest,
                               sequence: sequence, owner: owner)
        do {
            try JobLifecycle.storeInputs(inputs, job: id, blobs: blobs)
            try jobStore.save(record)
        } catch {
            try? jobStore.delete(id: id)
            try? blobs.deleteAll(job: id)
            logger.error("job submission failed", metadata: ["error": "\(error)"])
            throw error
        }

        cond.lock()
        entries[id] = Entry(record: record, version: 0)
        queue.append(id)
        if let key = idempotencyKey { idempotency[key] = id }
        changedLocked(id)
        let snapshot = snapshotLocked(entries[id]!)
        cond.signal()
        unlockAndRunDeferred()
        logger.info("job queued", metadata: ["job": "\(id)", "position": "\(snapshot.queuePosition ?? 0)"])
        return SubmitResult(snapshot: snapshot, created: true)
    }

    // MARK: Reading

    /// The job now, or nil when unknown (deleted, expired, never existed).
    public func snapshot(id: String) -> JobSnapshot? {
        cond.lock()
        defer { cond.unlock() }
        return entries[id].map(snapshotLocked)
    }

    /// Jobs are held in memory: a lookup takes only the lock.
    public var lookupIsInstant: Bool { true }

    /// The job, its tombstone (expired: answer 410), or not found (404).
    public func lookup(id: String) -> JobLookup {
        cond.lock()
        defer { cond.unlock() }
        if let entry = entries[id] { return .found(snapshotLocked(entry)) }
        if let t = tombstones[id] { return .expired(t) }
        return .notFound
    }

    /// 1-based queue position (1 = next to run), or nil when the job is not queued.
    public func queuePosition(of id: String) -> Int? {
        cond.lock()
        defer { cond.unlock() }
        return queue.firstIndex(of: id).map { $0 + 1 }
    }

    /// The local file of a succeeded job's result, with its record; nil otherwise.
    public func result(id: String) -> (record: JobRecord, file: URL)? {
        guard let snap = snapshot(id: id), snap.record.status == .succeeded,
              let url = blobs.path(job: id, name: Self.resultBlobName) else { return nil }
        return (snap.record, url)
    }

    /// Gauges and counters for metrics.
    public func stats() -> JobStats {
        cond.lock()
        defer { cond.unlock() }
        return JobStats(queued: queue.count, running: running.count, capacity: configuration.queueCapacity,
                        finished: finishedCounts, durationCount: durationCount, durationSum: durationSum,
                        recentDurations: recentDurations, waiting: watchers.waitingCount)
    }

    /// True when `submit` would currently be refused with `QueueFull` (for readiness).
    public var isFull: Bool {
        cond.lock()
        defer { cond.unlock() }
        return queue.count >= configuration.queueCapacity
    }

    /// Always true: the local data directory is part of this process.
    public var isAvailable: Bool { true }

    // MARK: Watching

    /// Suspends until the job changes (status, progress or queue position) after `version`
    /// (default: its version at the call), or `timeout` seconds pass, then returns the job.
    /// Returns at once when the job is already finished or the version is already newer;
    /// nil when the job is unknown or gets deleted meanwhile. Never blocks a thread.
    public func waitForChange(id: String, after version: UInt64? = nil, timeout: Double) async -> JobSnapshot? {
        // Changes are published after cond is released, in any order; a change after this read
        // is published after the waiter registers, and older ones are ignored.
        guard let current = snapshot(id: id) else { return nil }
        return await watchers.wait(current: current, after: version ?? current.version, timeout: timeout,
                                   reread: { [weak self] in self?.snapshot(id: id) },
                                   recheck: { [weak self] in self?.republish(id: id) })
    }

    /// Publishes the job's current state (or its removal) to its watchers.
    func republish(id: String) {
        if let s = snapshot(id: id) { watchers.publish(s) } else { watchers.removed(id: id) }
    }

    /// A stream of the job's states: the current one first, then every change in order;
    /// it finishes after the terminal state (at once for a finished or unknown job).
    public func events(id: String) -> AsyncStream<JobSnapshot> {
        cond.lock()
        guard let entry = entries[id] else {
            cond.unlock()
            return AsyncStream { $0.finish() }
        }
        let stream = watchers.stream(current: snapshotLocked(entry))
        cond.unlock()
        return stream
    }

    // MARK: Canceling and deleting

    /// Cancels a queued job at once (its inputs are removed), asks a running one to stop
    /// (it becomes `canceled` when its executor returns), or deletes a finished job with its
    /// files. See `CancelOutcome` for the HTTP answer of each case.
    public func cancel(id: String) -> CancelOutcome {
        writeLock.lock()
        defer { writeLock.unlock() }
        cond.lock()
        guard var entry = entries[id] else {
            let t = tombstones[id]
            cond.unlock()
            return t.map(CancelOutcome.expired) ?? .notFound
        }
        switch entry.record.status {
        case .queued:
            // A deleted queued job is gone, record and files: keeping canceled records would let a
            // client grow the store without bound by submitting and deleting in a loop.
            if let index = queue.firstIndex(of: id) {
                queue.remove(at: index)
                for other in queue[index...] { changedLocked(other) }
            }
            entry.record.status = .canceled
            entry.record.finishedAt = JobsJSON.now()
            entries[id] = entry
            finishedCounts[.canceled, default: 0] += 1
            changedLocked(id)   // watchers and event streams see the final state before it goes
            let snap = snapshotLocked(entries[id]!)
            removeEntryLocked(id)
            unlockAndRunDeferred()
            try? blobs.deleteAll(job: id)
            try? jobStore.delete(id: id)
            logger.info("job canceled", metadata: ["job": "\(id)", "was": "queued"])
            return .canceled(snap)
        case .running:
            running[id]?.cancelRequested = true
            let snap = snapshotLocked(entry)
            cond.unlock()
            logger.info("job cancel requested", metadata: ["job": "\(id)"])
            return .cancelRequested(snap)
        case .succeeded, .failed, .canceled:
            removeEntryLocked(id)
            unlockAndRunDeferred()
            try? jobStore.delete(id: id)
            try? blobs.deleteAll(job: id)
            logger.info("job deleted", metadata: ["job": "\(id)"])
            return .deleted
        }
    }

    // MARK: Locked helpers (call with cond held)

    func snapshotLocked(_ entry: Entry) -> JobSnapshot {
        let position = entry.record.status == .queued ? queue.firstIndex(of: entry.record.id).map { $0 + 1 } : nil
        return JobSnapshot(record: entry.record, queuePosition: position, version: entry.version)
    }

    /// Marks the job changed: a new version; watchers see it once cond is released.
    func changedLocked(_ id: String) {
        guard var entry = entries[id] else { return }
        versionCounter += 1
        entry.version = versionCounter
        entries[id] = entry
        let snap = snapshotLocked(entry)
        deferred.append { [watchers] in watchers.publish(snap) }
    }

    /// Forgets a job: its idempotency key goes, its watchers are told once cond is released.
    func removeEntryLocked(_ id: String) {
        guard let entry = entries.removeValue(forKey: id) else { return }
        if let key = entry.record.idempotencyKey, idempotency[key] == id { idempotency[key] = nil }
        deferred.append { [watchers] in watchers.removed(id: id) }
    }

    func unlockAndRunDeferred() {
        let actions = deferred
        deferred = []
        cond.unlock()
        for action in actions { action() }
    }

    /// Seconds until a queue slot is likely to free: the shortest expected remaining time of
    /// a running job (mean of recent durations minus elapsed), at least 1, at most 3600.
    func retryAfterLocked() -> Int {
        let mean = recentDurations.isEmpty ? configuration.defaultJobSeconds
            : recentDurations.reduce(0, +) / Double(recentDurations.count)
        let now = Self.uptime()
        var estimate = mean
        if !running.isEmpty {
            estimate = running.values.map { max(1, mean - (now - $0.startedUptime)) }.min() ?? mean
        }
        return Int(min(3600, max(1, estimate.rounded(.up))))
    }
}
