import Foundation
import Jobs
import Logging
import Postgres

/// The job system of many replicas sharing one PostgreSQL database: job records, the queue,
/// idempotency keys, tombstones and blobs all live in the database, so any replica answers
/// for any job. Workers claim the oldest queued job with `FOR UPDATE SKIP LOCKED` and hold it
/// with a lease they renew; a job whose lease lapses (its replica died) goes back to the
/// queue. Changes reach other replicas' watchers through `LISTEN/NOTIFY`, re-read after a
/// reconnect so nothing is missed.
///
/// Thread-safety: the database is the shared state; this replica's own state (the jobs its
/// workers run, counters) sits behind `cond`, which is never held across a database call.
public final class PostgresJobQueue: JobQueue, @unchecked Sendable {
    /// Settings: the local backend's (`JobSystem.Configuration`, read through as if they were
    /// this struct's own; `workers` 0 makes an API-only replica) plus what only a database
    /// backend has.
    @dynamicMemberLookup
    public struct Configuration: Sendable {
        /// Capacity, workers, TTLs, attempts, progress interval, logger and the rest.
        public var jobs = JobSystem.Configuration()
        /// Seconds a claim lasts without renewal; renewed every third of it.
        public var leaseSeconds: Double = 30
        /// Seconds an idle worker waits between looks at the queue when no notification came.
        public var pollInterval: Double = 2
        /// The defaults.
        public init() {}
        /// A setting shared with the local backend.
        public subscript<T>(dynamicMember path: WritableKeyPath<JobSystem.Configuration, T>) -> T {
            get { jobs[keyPath: path] }
            set { jobs[keyPath: path] = newValue }
        }
    }

    /// A job a worker of this replica is running.
    final class RunState {
        var record: JobRecord
        let startedUptime: Double
        var lastPersist: Double
        var cancelRequested = false
        var abandoned = false
        var persistScheduled = false
        init(record: JobRecord, now: Double) {
            self.record = record
            startedUptime = now
            lastPersist = now
        }
    }

    /// Input and result blobs (in the database, cached under the replica's cache directory).
    public var blobs: BlobStore { blobStore }
    /// The settings in force.
    public let configuration: Configuration
    /// This replica's name on the leases it holds.
    public let replicaID = randomToken(bytes: 9)

    let database: JobDatabase
    let blobStore: PostgresBlobStore
    let executor: JobExecutor?
    let watchers = JobWatchers()
    var logger: Logger { configuration.logger }
    var listener: PostgresListener!
    let notificationQueue = DispatchQueue(label: "stylist.jobs.notifications")

    // Guarded by cond.
    let cond = NSCondition()
    var running: [String: RunState] = [:]
    var stopping = false
    var wakeups = 0
    var finishedCounts: [JobStatus: Int] = [.succeeded: 0, .failed: 0, .canceled: 0]
    var recentDurations: [Double] = []
    var durationCount = 0
    var durationSum = 0.0
    var threads = 0

    /// Starts this replica's part of the queue in `database`: its listener, its workers (none
    /// without an executor), lease keeper and sweeper. Blobs are cached under `cacheDirectory/jobs`.
    public init(database: JobDatabase, cacheDirectory: URL, executor: JobExecutor?,
                configuration: Configuration = Configuration()) throws {
        var config = configuration
        config.queueCapacity = max(1, config.queueCapacity)
        config.workers = executor == nil ? 0 : max(0, config.workers)
        config.leaseSeconds = max(1, config.leaseSeconds)
        self.configuration = config
        self.executor = executor
        self.database = database
        let url = database.url
        blobStore = try PostgresBlobStore(database: database, space: "job",
                                          cacheRoot: cacheDirectory.appendingPathComponent("jobs"))
        listener = try PostgresListener(
            url: url, channels: [Schema.jobChannel, Schema.queueChannel, Schema.cancelChannel],
            pingInterval: 5, logger: config.logger,
            onReconnect: { [weak self] in self?.missedNotifications() },
            onNotification: { [weak self] n in self?.received(n) })
        listener.start()
        _ = listener.waitUntilListening(timeout: 5)
        startThreads()
        logger.info("job queue on PostgreSQL", metadata: ["replica": "\(replicaID)", "workers": "\(config.workers)"])
    }

    // MARK: Submitting

    /// Accepts a job: stores its inputs and inserts its row (durable at commit), then notifies
    /// idle workers on every replica. See `JobQueue.submit`.
    public func submit(inputs: [JobInput], styleIDs: [String], parameters: [String: String],
                       idempotencyKey: String?, requestDigest: String?, owner: String?) throws -> SubmitResult {
        try JobLifecycle.checkInputNames(inputs)
        if cond.withLock({ stopping }) { throw JobSystemShuttingDown() }
        if let key = idempotencyKey, let replay = try replay(key: key, digest: requestDigest) { return replay }
        let queued = try database.run { c in try c.query("SELECT count(*) AS n FROM stylist_jobs WHERE status = 'queued'").first?.int("n") ?? 0 }
        if queued >= configuration.queueCapacity {
            throw QueueFull(retryAfter: retryAfter(), capacity: configuration.queueCapacity)
        }
        let id = randomToken(bytes: 16)
        let sequence = try database.run { c in try c.query("SELECT nextval('stylist_job_seq') AS n").first?.int64("n") ?? 0 }
        let record = JobRecord(id: id, createdAt: JobsJSON.now(), parameters: parameters, inputs: inputs.map(\.name),
                               styleIDs: styleIDs, idempotencyKey: idempotencyKey, requestDigest: requestDigest,
                               sequence: UInt64(max(0, sequence)), owner: owner)
        let inserted: Bool
        do {
            try JobLifecycle.storeInputs(inputs, job: id, blobs: blobStore)
            inserted = try database.run { c in
                try c.transaction { c in
                    let rows = try c.query("""
                        INSERT INTO stylist_jobs (id, seq, status, record, version, idempotency_key)
                        VALUES ($1, $2, 'queued', $3, nextval('stylist_change_seq'), $4)
                        ON CONFLICT (idempotency_key) DO NOTHING RETURNING id
                        """, [.text(id), .int(sequence), try jsonText(record), idempotencyKey.map(PostgresValue.text)])
                    if rows.isEmpty { return false }
                    try c.notify(channel: Schema.queueChannel, payload: "added")
                    return true
                }
            }
        } catch {
            try? blobStore.deleteAll(job: id)
            logger.error("job submission failed", metadata: ["error": "\(error)"])
            throw error
        }
        guard inserted, let snap = try read(id: id) else {
            // Another replica took the same idempotency key between our check and our insert.
            try? blobStore.deleteAll(job: id)
            if let key = idempotencyKey, let replay = try replay(key: key, digest: requestDigest) { return replay }
            throw JobStoreUnavailable(reason: "a job vanished while it was being created")
        }
        logger.info("job queued", metadata: ["job": "\(id)", "position": "\(snap.queuePosition ?? 0)"])
        return SubmitResult(snapshot: snap, created: true)
    }

    private func replay(key: String, digest: String?) throws -> SubmitResult? {
        let existing = try database.run { c in
            try c.query("SELECT id FROM stylist_jobs WHERE idempotency_key = $1", [.text(key)]).first?.string("id")
        }
        guard let existing, let snap = try read(id: existing) else { return nil }
        guard snap.record.requestDigest == digest else { throw IdempotencyKeyReused(key: key, existingJobID: existing) }
        return SubmitResult(snapshot: snap, created: false)
    }

    // MARK: Reading

    /// The job as stored now; its version for a queued job also moves when any job leaves the queue.
    func read(id: String) throws -> JobSnapshot? {
        guard Names.isValidID(id) else { return nil }
        return try database.run { c in
            guard let row = try c.query("""
                SELECT j.record, j.version, (SELECT version FROM stylist_queue_clock WHERE id = 1) AS clock,
                       CASE WHEN j.status = 'queued' THEN
                           (SELECT count(*) FROM stylist_jobs q WHERE q.status = 'queued' AND q.seq <= j.seq) END AS position
                FROM stylist_jobs j WHERE j.id = $1
                """, [.text(id)]).first else { return nil }
            let record = try row.json(JobRecord.self, "record")
            var version = try row.int64("version") ?? 0
            let position = try row.int("position")
            if record.status == .queued { version = max(version, try row.int64("clock") ?? 0) }
            return JobSnapshot(record: record, queuePosition: position, version: UInt64(max(0, version)))
        }
    }

    /// The job now, or nil when unknown or the database cannot be reached.
    public func snapshot(id: String) -> JobSnapshot? { try? read(id: id) }

    /// A lookup is a query, so it must not run on a thread that serves sockets.
    public var lookupIsInstant: Bool { false }

    /// The job, its tombstone, or not found. Throws `JobStoreUnavailable`.
    public func lookup(id: String) throws -> JobLookup {
        if let snap = try read(id: id) { return .found(snap) }
        guard Names.isValidID(id) else { return .notFound }
        let expired = try database.run { c in
            try c.query("SELECT expired_at FROM stylist_tombstones WHERE id = $1", [.text(id)]).first?.date("expired_at")
        }
        return expired.map { .expired(JobTombstone(id: id, expiredAt: $0)) } ?? .notFound
    }

    /// The result of a succeeded job as a local file (fetched into the cache when needed).
    public func result(id: String) throws -> (record: JobRecord, file: URL)? {
        guard let snap = try read(id: id), snap.record.status == .succeeded,
              let url = blobStore.path(job: id, name: JobLifecycle.resultBlobName) else { return nil }
        return (snap.record, url)
    }

    /// Queue depth over all replicas; running jobs, counters and durations of this replica.
    public func stats() -> JobStats {
        let queued = (try? database.run { c in
            try c.query("SELECT count(*) AS n FROM stylist_jobs WHERE status = 'queued'").first?.int("n") ?? 0
        }) ?? 0
        cond.lock()
        defer { cond.unlock() }
        return JobStats(queued: queued, running: running.count, capacity: configuration.queueCapacity,
                        finished: finishedCounts, durationCount: durationCount, durationSum: durationSum,
                        recentDurations: recentDurations, waiting: watchers.waitingCount)
    }

    /// True when the queue over all replicas is at capacity (false when it cannot be read).
    public var isFull: Bool { stats().queued >= configuration.queueCapacity }

    /// True while the database answers.
    public var isAvailable: Bool { database.isAvailable }

    // MARK: Watching

    /// Waits for a change of the job made by any replica. See `JobQueue.waitForChange`.
    public func waitForChange(id: String, after version: UInt64? = nil, timeout: Double) async -> JobSnapshot? {
        guard let current = snapshot(id: id) else { return nil }
        return await watchers.wait(current: current, after: version ?? current.version, timeout: timeout,
                                   reread: { [weak self] in self?.snapshot(id: id) },
                                   recheck: { [weak self] in self?.republish(id: id) })
    }

    /// The job's states as any replica changes them. See `JobQueue.events`.
    public func events(id: String) -> AsyncStream<JobSnapshot> {
        guard let current = snapshot(id: id) else { return AsyncStream { $0.finish() } }
        let stream = watchers.stream(current: current)
        republish(id: id)
        return stream
    }

    /// Reads the job again and hands it to its watchers (or tells them it is gone).
    func republish(id: String) {
        do {
            if let snap = try read(id: id) {
                watchers.publish(snap)
            } else {
                // Gone. The replica that removed it publishes the job's last state (canceled)
                // itself; the grace lets that reach the watchers before they are let go.
                DispatchQueue.global().asyncAfter(deadline: .now() + 1) { [watchers] in watchers.removed(id: id) }
            }
        } catch {
            logger.debug("could not re-read a watched job", metadata: ["job": "\(id)", "error": "\(error)"])
        }
    }

    /// A notification from any replica (on the listener's thread).
    func received(_ notification: PostgresListener.Notification) {
        switch notification.channel {
        case Schema.jobChannel:
            let id = notification.payload
            if watchers.isWatched(id) { notificationQueue.async { [weak self] in self?.republish(id: id) } }
        case Schema.queueChannel:
            if notification.payload == "added" {
                wakeWorkers()   // a job joining the back of the queue moves no one's position
            } else {
                let watched = watchers.watchedIDs
                if !watched.isEmpty { notificationQueue.async { [weak self] in watched.forEach { self?.republish(id: $0) } } }
            }
        case Schema.cancelChannel:
            cond.withLock { running[notification.payload]?.cancelRequested = true }
        default:
            break
        }
    }

    /// The listener reconnected: notifications sent meanwhile are lost, so everything watched is
    /// read again and idle workers look at the queue.
    func missedNotifications() {
        wakeWorkers()
        let watched = watchers.watchedIDs
        notificationQueue.async { [weak self] in watched.forEach { self?.republish(id: $0) } }
    }

    func wakeWorkers() {
        cond.lock()
        wakeups += 1
        cond.broadcast()
        cond.unlock()
    }

    /// Seconds until a queue slot is likely to free: the mean recent duration here, 1...3600.
    func retryAfter() -> Int {
        cond.lock()
        defer { cond.unlock() }
        let mean = recentDurations.isEmpty ? configuration.defaultJobSeconds
            : recentDurations.reduce(0, +) / Double(recentDurations.count)
        return Int(min(3600, max(1, mean.rounded(.up))))
    }
}
