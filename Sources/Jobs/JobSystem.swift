import Foundation
import Logging

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
}

/// The job system: a durable bounded FIFO queue of jobs, worker threads running an injected
/// `JobExecutor`, cancellation, watchers, restart recovery, TTL sweeping and idempotency.
///
/// Thread-safety: all state sits behind one condition lock; disk writes of records are
/// serialized by a second lock taken before it, and every write saves the latest in-memory
/// state, so the file on disk never goes backwards. Workers are dedicated `Thread`s, never
/// the Swift concurrency pool. Watchers (`waitForChange`, `events`) suspend on continuations.
public final class JobSystem: @unchecked Sendable {
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
    public static let resultBlobName = "result"

    /// The record store.
    public let jobStore: JobStore
    /// The blob store (executors read inputs from it; the app streams results from it).
    public let blobs: BlobStore
    /// The settings in force.
    public let configuration: Configuration

    private let executor: JobExecutor
    private var logger: Logger { configuration.logger }

    private final class RunState {
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

    private struct Entry {
        var record: JobRecord
        var version: UInt64
    }

    private struct Waiter {
        var after: UInt64
        var continuation: CheckedContinuation<JobSnapshot?, Never>
    }

    // Lock order: writeLock, then cond. Everything below is guarded by cond.
    private let writeLock = NSLock()
    private let cond = NSCondition()
    private var entries: [String: Entry] = [:]
    private var queue: [String] = []
    private var running: [String: RunState] = [:]
    private var idempotency: [String: String] = [:]
    private var tombstones: [String: JobTombstone] = [:]
    private var waiters: [String: [UInt64: Waiter]] = [:]
    private var streams: [String: [UInt64: AsyncStream<JobSnapshot>.Continuation]] = [:]
    private var canceledTokens: Set<UInt64> = []
    private var nextToken: UInt64 = 0
    private var versionCounter: UInt64 = 0
    private var nextSequence: UInt64 = 1
    private var stopping = false
    private var finishedCounts: [JobStatus: Int] = [.succeeded: 0, .failed: 0, .canceled: 0]
    private var recentDurations: [Double] = []
    private var durationCount = 0
    private var durationSum = 0.0
    private var deferred: [() -> Void] = []
    private var sweeper: DispatchSourceTimer?

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
                record.status = .failed
                record.error = JobFailure(status: 500, title: "Job interrupted",
                                          detail: "The service stopped while running this job \(record.attempts) times.")
                record.finishedAt = now
                record.expiresAt = JobsJSON.normalize(now.addingTimeInterval(config.ttl))
                try jobStore.save(record)
                for name in record.inputs { try? blobStore.delete(job: record.id, name: name) }
                logger.warning("job failed after interruptions", metadata: ["job": "\(record.id)", "attempts": "\(record.attempts)"])
            case .running:
                record.status = .queued
                record.startedAt = nil
                record.progress = 0
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
        var seen = Set<String>()
        for input in inputs {
            guard Names.isValidBlobName(input.name), input.name != LocalJobStore.recordName,
                  input.name != Self.resultBlobName, seen.insert(input.name).inserted
            else { throw InvalidBlobName(name: input.name) }
        }
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
            for input in inputs {
                switch input.source {
                case .file(let url): try blobs.put(file: url, job: id, name: input.name)
                case .bytes(let bytes): try blobs.put(bytes, job: id, name: input.name)
                }
            }
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
                        recentDurations: recentDurations, waiting: waiters.values.reduce(0) { $0 + $1.count })
    }

    /// True when `submit` would currently be refused with `QueueFull` (for readiness).
    public var isFull: Bool {
        cond.lock()
        defer { cond.unlock() }
        return queue.count >= configuration.queueCapacity
    }

    // MARK: Watching

    /// Suspends until the job changes (status, progress or queue position) after `version`
    /// (default: its version at the call), or `timeout` seconds pass, then returns the job.
    /// Returns at once when the job is already finished or the version is already newer;
    /// nil when the job is unknown or gets deleted meanwhile. Never blocks a thread.
    public func waitForChange(id: String, after version: UInt64? = nil, timeout: Double) async -> JobSnapshot? {
        let token = allocateToken()
        defer { forgetToken(token) }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<JobSnapshot?, Never>) in
                cond.lock()
                guard let entry = entries[id] else {
                    cond.unlock()
                    continuation.resume(returning: nil)
                    return
                }
                let snap = snapshotLocked(entry)
                let after = version ?? snap.version
                if entry.record.status.isTerminal || snap.version > after || timeout <= 0 || stopping
                    || canceledTokens.remove(token) != nil {
                    cond.unlock()
                    continuation.resume(returning: snap)
                    return
                }
                waiters[id, default: [:]][token] = Waiter(after: after, continuation: continuation)
                cond.unlock()
                DispatchQueue.global().asyncAfter(deadline: .now() + min(timeout, 86400)) { [weak self] in
                    self?.releaseWaiter(id: id, token: token, canceled: false)
                }
            }
        } onCancel: {
            self.releaseWaiter(id: id, token: token, canceled: true)
        }
    }

    private func allocateToken() -> UInt64 {
        cond.lock()
        defer { cond.unlock() }
        nextToken += 1
        return nextToken
    }

    private func forgetToken(_ token: UInt64) {
        cond.lock()
        canceledTokens.remove(token)
        cond.unlock()
    }

    private func releaseWaiter(id: String, token: UInt64, canceled: Bool) {
        cond.lock()
        if let waiter = waiters[id]?.removeValue(forKey: token) {
            if waiters[id]?.isEmpty == true { waiters[id] = nil }
            let snap = entries[id].map(snapshotLocked)
            cond.unlock()
            waiter.continuation.resume(returning: snap)
        } else {
            if canceled { canceledTokens.insert(token) }
            cond.unlock()
        }
    }

    /// A stream of the job's states: the current one first, then every change in order;
    /// it finishes after the terminal state (at once for a finished or unknown job).
    public func events(id: String) -> AsyncStream<JobSnapshot> {
        let (stream, continuation) = AsyncStream.makeStream(of: JobSnapshot.self, bufferingPolicy: .bufferingNewest(4096))
        let token = allocateToken()
        // Unregistered off this thread: onTermination can run inside a task's cancellation, holding
        // that task's status lock, while `changedLocked` yields to this stream under `cond` and
        // needs the same task lock to wake its consumer - taking `cond` here deadlocked the server
        // (an SSE client dropping its connection as the job reported progress). Until the block
        // runs, yields to the finished continuation are dropped.
        continuation.onTermination = { [weak self] _ in
            guard let system = self else { return }
            DispatchQueue.global().async {
                system.cond.lock()
                system.streams[id]?[token] = nil
                if system.streams[id]?.isEmpty == true { system.streams[id] = nil }
                system.cond.unlock()
            }
        }
        cond.lock()
        guard let entry = entries[id] else {
            cond.unlock()
            continuation.finish()
            return stream
        }
        let snap = snapshotLocked(entry)
        continuation.yield(snap)
        if snap.record.status.isTerminal || stopping {
            cond.unlock()
            continuation.finish()
            return stream
        }
        streams[id, default: [:]][token] = continuation
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

    // MARK: Expiry

    /// Removes finished jobs whose `expiresAt` has passed (leaving tombstones) and tombstones
    /// older than `tombstoneTTL`; returns how many jobs expired. Runs every `sweepInterval`.
    @discardableResult
    public func sweep(now: Date = Date()) -> Int {
        writeLock.lock()
        cond.lock()
        let expired = entries.values.filter {
            $0.record.status.isTerminal && ($0.record.expiresAt ?? .distantFuture) <= now
        }.map(\.record.id)
        var newTombstones: [JobTombstone] = []
        for id in expired {
            removeEntryLocked(id)
            let t = JobTombstone(id: id, expiredAt: JobsJSON.normalize(now))
            tombstones[id] = t
            newTombstones.append(t)
        }
        let horizon = now.addingTimeInterval(-configuration.tombstoneTTL)
        var old = tombstones.values.filter { $0.expiredAt <= horizon }.map(\.id)
        for id in old { tombstones[id] = nil }
        if tombstones.count > configuration.maxTombstones {
            let oldest = tombstones.values.sorted { ($0.expiredAt, $0.id) < ($1.expiredAt, $1.id) }
                .prefix(tombstones.count - configuration.maxTombstones).map(\.id)
            for id in oldest { tombstones[id] = nil }
            old += oldest
        }
        unlockAndRunDeferred()
        // The expired jobs are out of memory, so no other writer reaches them: their disk work
        // runs without the write lock, and frees the files first, so a full disk (where the
        // tombstone cannot be written) still gets its space back.
        writeLock.unlock()
        for t in newTombstones {
            do {
                try blobs.deleteAll(job: t.id)
                try jobStore.delete(id: t.id)
                try jobStore.saveTombstone(t)
            } catch {
                logger.error("could not remove expired job", metadata: ["job": "\(t.id)", "error": "\(error)"])
            }
            logger.info("job expired", metadata: ["job": "\(t.id)"])
        }
        for id in old { try? jobStore.deleteTombstone(id: id) }
        return expired.count
    }

    // MARK: Shutdown

    /// Stops workers from taking jobs, waits up to `grace` seconds for running jobs to finish,
    /// then persists any still running as `queued` (they run again on the next start; their
    /// executors see `isCanceled` and their outcome is discarded). Wakes every watcher. After
    /// this, `submit` throws `JobSystemShuttingDown`.
    public func shutdown(grace: Double) {
        sweeper?.cancel()
        cond.lock()
        stopping = true
        cond.broadcast()
        let deadline = Date().addingTimeInterval(max(0, grace))
        while running.values.contains(where: { !$0.abandoned }) && Date() < deadline {
            _ = cond.wait(until: deadline)
        }
        cond.unlock()

        writeLock.lock()
        cond.lock()
        var requeued: [JobRecord] = []
        for state in running.values where !state.abandoned {
            state.abandoned = true
            guard var entry = entries[state.id] else { continue }
            entry.record.status = .queued
            entry.record.startedAt = nil
            entry.record.progress = 0
            entries[state.id] = entry
            changedLocked(state.id)
            requeued.append(entry.record)
        }
        cond.unlock()
        for record in requeued {
            do { try jobStore.save(record) } catch {
                logger.error("could not persist interrupted job", metadata: ["job": "\(record.id)", "error": "\(error)"])
            }
            logger.info("job left queued for the next start", metadata: ["job": "\(record.id)"])
        }
        writeLock.unlock()

        cond.lock()
        for (id, ws) in waiters {
            let snap = entries[id].map(snapshotLocked)
            for w in ws.values { deferred.append { w.continuation.resume(returning: snap) } }
        }
        waiters = [:]
        for ss in streams.values { for s in ss.values { deferred.append { s.finish() } } }
        streams = [:]
        unlockAndRunDeferred()
    }

    // MARK: Workers

    private static func uptime() -> Double { ProcessInfo.processInfo.systemUptime }

    private func workerLoop() {
        while let (record, state) = takeNext() {
            run(record, state)
            cond.lock()
            let idle = queue.isEmpty && running.isEmpty && !stopping
            cond.unlock()
            if idle { executor.becameIdle() }
        }
    }

    private func takeNext() -> (JobRecord, RunState)? {
        while true {
            cond.lock()
            while queue.isEmpty && !stopping { cond.wait() }
            let stop = stopping
            cond.unlock()
            if stop { return nil }

            writeLock.lock()
            cond.lock()
            if stopping || queue.isEmpty {
                cond.unlock()
                writeLock.unlock()
                continue
            }
            let id = queue.removeFirst()
            for other in queue { changedLocked(other) }
            var entry = entries[id]!
            entry.record.status = .running
            entry.record.startedAt = JobsJSON.now()
            entry.record.attempts += 1
            entry.record.progress = 0
            entries[id] = entry
            let state = RunState(id: id, now: Self.uptime())
            running[id] = state
            changedLocked(id)
            unlockAndRunDeferred()
            do { try jobStore.save(entry.record) } catch {
                logger.error("could not persist running job", metadata: ["job": "\(id)", "error": "\(error)"])
            }
            writeLock.unlock()
            logger.info("job started", metadata: ["job": "\(id)", "attempt": "\(entry.record.attempts)"])
            return (entry.record, state)
        }
    }

    private func run(_ record: JobRecord, _ state: RunState) {
        let progress = JobProgress(onReport: { [weak self] f in self?.reportProgress(state, f) },
                                   isCanceled: { [weak self] in self?.isCanceled(state) ?? true })
        let outcome: Result<JobResult, Error>
        do {
            outcome = .success(try executor.execute(record, blobs: blobs, progress: progress))
        } catch {
            outcome = .failure(error)
        }
        finish(state, outcome)
    }

    private func isCanceled(_ state: RunState) -> Bool {
        cond.lock()
        defer { cond.unlock() }
        return state.cancelRequested || state.abandoned
    }

    private func reportProgress(_ state: RunState, _ fraction: Double) {
        let id = state.id
        cond.lock()
        guard running[id] === state, !state.abandoned, var entry = entries[id],
              entry.record.status == .running, entry.record.progress != fraction else {
            cond.unlock()
            return
        }
        entry.record.progress = fraction
        entries[id] = entry
        changedLocked(id)
        let now = Self.uptime()
        let persist = now - state.lastPersist >= configuration.progressPersistInterval
        if persist { state.lastPersist = now }
        unlockAndRunDeferred()
        guard persist else { return }
        writeLock.lock()
        defer { writeLock.unlock() }
        cond.lock()
        let latest = (running[id] === state && !state.abandoned) ? entries[id]?.record : nil
        cond.unlock()
        if let latest, latest.status == .running { try? jobStore.save(latest) }
    }

    private func finish(_ state: RunState, _ outcome: Result<JobResult, Error>) {
        let id = state.id
        writeLock.lock()
        cond.lock()
        if running[id] === state { running[id] = nil }
        cond.broadcast()
        guard !state.abandoned, let entry = entries[id] else {
            cond.unlock()
            writeLock.unlock()
            if case .success(let r) = outcome, case .file(let url) = r.payload { try? DurableFS.removeFile(url) }
            return
        }
        let canceled = state.cancelRequested
        cond.unlock()

        var record = entry.record
        let now = JobsJSON.now()
        switch outcome {
        case .success(let result) where !canceled:
            do {
                switch result.payload {
                case .bytes(let bytes): try blobs.put(bytes, job: id, name: Self.resultBlobName)
                case .file(let url): try blobs.put(file: url, job: id, name: Self.resultBlobName)
                }
                record.status = .succeeded
                record.progress = 1
                record.resultContentType = result.contentType
                if let url = blobs.path(job: id, name: Self.resultBlobName) {
                    record.resultSize = DurableFS.fileSize(url)
                    record.resultSHA256 = try? SHA256Digest.hex(file: url)
                } else if case .bytes(let bytes) = result.payload {
                    record.resultSize = bytes.count
                    record.resultSHA256 = SHA256Digest.hex(bytes)
                }
            } catch {
                // The job's error is shown to clients: it says what failed, never where.
                logger.error("could not store a result", metadata: ["job": "\(id)", "error": "\(error)"])
                let full = (error as? StorageError).map { $0.code == ENOSPC || $0.code == EDQUOT } ?? false
                record.status = .failed
                record.error = JobFailure(status: full ? 507 : 500, title: "Could not store the result",
                                          detail: full ? "The server's disk is full." : "The server could not write the result.")
            }
        case .success(let result):
            if case .file(let url) = result.payload { try? DurableFS.removeFile(url) }
            record.status = .canceled
        case .failure(let error):
            if canceled || error is JobCanceled {
                record.status = .canceled
            } else if let convertible = error as? JobFailureConvertible {
                record.status = .failed
                record.error = convertible.jobFailure
            } else {
                logger.error("job failed unexpectedly", metadata: ["job": "\(id)", "error": "\(error)"])
                record.status = .failed
                record.error = JobFailure(status: 500, title: "Job failed", detail: "An internal error stopped the job; the server log has the details.")
            }
        }
        record.finishedAt = now
        record.expiresAt = JobsJSON.normalize(now.addingTimeInterval(configuration.ttl))
        do {
            try jobStore.save(record)
            // Inputs go only once the final record is durable: if the save fails (a full disk), the
            // stored record still says queued/running and the job runs again on the next start.
            for name in record.inputs { try? blobs.delete(job: id, name: name) }
            if record.status == .canceled { try? blobs.delete(job: id, name: Self.resultBlobName) }
        } catch {
            logger.error("could not persist finished job", metadata: ["job": "\(id)", "error": "\(error)"])
        }

        cond.lock()
        entries[id] = Entry(record: record, version: entry.version)
        finishedCounts[record.status, default: 0] += 1
        let seconds = max(0, Self.uptime() - state.startedUptime)
        durationCount += 1
        durationSum += seconds
        recentDurations.append(seconds)
        if recentDurations.count > 100 { recentDurations.removeFirst(recentDurations.count - 100) }
        changedLocked(id)
        unlockAndRunDeferred()
        writeLock.unlock()

        var metadata: Logger.Metadata = ["job": "\(id)", "status": "\(record.status.rawValue)",
                                         "seconds": "\(String(format: "%.3f", seconds))"]
        if let e = record.error { metadata["error"] = "\(e.status) \(e.title): \(e.detail ?? "")" }
        logger.info("job finished", metadata: metadata)
        configuration.onFinished?(record)
    }

    // MARK: Locked helpers (call with cond held)

    private func snapshotLocked(_ entry: Entry) -> JobSnapshot {
        let position = entry.record.status == .queued ? queue.firstIndex(of: entry.record.id).map { $0 + 1 } : nil
        return JobSnapshot(record: entry.record, queuePosition: position, version: entry.version)
    }

    /// Marks the job changed: a new version, watchers woken, stream subscribers fed.
    private func changedLocked(_ id: String) {
        guard var entry = entries[id] else { return }
        versionCounter += 1
        entry.version = versionCounter
        entries[id] = entry
        let snap = snapshotLocked(entry)
        if let ws = waiters[id] {
            var remaining = ws
            for (token, w) in ws where snap.version > w.after {
                remaining[token] = nil
                deferred.append { w.continuation.resume(returning: snap) }
            }
            waiters[id] = remaining.isEmpty ? nil : remaining
        }
        if let ss = streams[id] {
            for s in ss.values { s.yield(snap) }
            if snap.record.status.isTerminal {
                streams[id] = nil
                for s in ss.values { deferred.append { s.finish() } }
            }
        }
    }

    private func removeEntryLocked(_ id: String) {
        guard let entry = entries.removeValue(forKey: id) else { return }
        if let key = entry.record.idempotencyKey, idempotency[key] == id { idempotency[key] = nil }
        if let ws = waiters.removeValue(forKey: id) {
            for w in ws.values { deferred.append { w.continuation.resume(returning: nil) } }
        }
        if let ss = streams.removeValue(forKey: id) {
            for s in ss.values { deferred.append { s.finish() } }
        }
    }

    private func unlockAndRunDeferred() {
        let actions = deferred
        deferred = []
        cond.unlock()
        for action in actions { action() }
    }

    /// Seconds until a queue slot is likely to free: the shortest expected remaining time of
    /// a running job (mean of recent durations minus elapsed), at least 1, at most 3600.
    private func retryAfterLocked() -> Int {
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
