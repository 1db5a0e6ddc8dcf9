import Foundation
import Jobs
import Logging
import Postgres

/// This replica's workers: claim the oldest queued job, run it under a lease, record the outcome.
extension PostgresJobQueue {
    static func uptime() -> Double { ProcessInfo.processInfo.systemUptime }

    func startThreads() {
        for n in 0..<configuration.workers {
            let thread = Thread { [self] in workerLoop() }
            thread.name = "stylist-worker-\(n)"
            thread.stackSize = configuration.workerStackSize
            cond.withLock { threads += 1 }
            thread.start()
        }
        let keeper = Thread { [self] in maintenanceLoop() }
        keeper.name = "stylist-lease-keeper"
        cond.withLock { threads += 1 }
        keeper.start()
    }

    func workerLoop() {
        defer { threadExited() }
        var backoff = Backoff(minimum: 0.2, maximum: 5)
        var ranSinceIdle = false
        while !cond.withLock({ stopping }) {
            let seen = cond.withLock { wakeups }
            let claimed: (JobRecord, RunState)?
            do {
                claimed = try claim()
                backoff.succeeded()
            } catch {
                logger.warning("could not claim a job", metadata: ["error": "\(error)"])
                sleepUnlessWoken(seen: seen, seconds: backoff.failed())
                continue
            }
            guard let (record, state) = claimed else {
                // The queue is empty: the moment to hand memory kept for the next job back.
                if ranSinceIdle && cond.withLock({ running.isEmpty && !stopping }) {
                    ranSinceIdle = false
                    executor?.becameIdle()
                }
                sleepUnlessWoken(seen: seen, seconds: configuration.pollInterval)
                continue
            }
            run(record, state)
            ranSinceIdle = true
        }
    }

    func sleepUnlessWoken(seen: Int, seconds: Double) {
        cond.lock()
        let deadline = Date().addingTimeInterval(seconds)
        while wakeups == seen && !stopping && Date() < deadline { _ = cond.wait(until: deadline) }
        cond.unlock()
    }

    func threadExited() {
        cond.lock()
        threads -= 1
        cond.broadcast()
        cond.unlock()
    }

    /// Takes the oldest queued job no other worker holds, marks it running under this
    /// replica's lease and moves the queue clock (every queued job's position changed).
    func claim() throws -> (JobRecord, RunState)? {
        let record: JobRecord? = try database.run { c in
            try c.transaction { c in
                guard let row = try c.query("""
                    SELECT id, record FROM stylist_jobs WHERE status = 'queued'
                    ORDER BY seq FOR UPDATE SKIP LOCKED LIMIT 1
                    """).first else { return nil }
                let started = JobLifecycle.started(try row.json(JobRecord.self, "record"))
                try c.query("""
                    UPDATE stylist_jobs SET status = 'running', record = $2, version = nextval('stylist_change_seq'),
                        lease_owner = $3, lease_expires = now() + make_interval(secs => $4), cancel_requested = false
                    WHERE id = $1
                    """, [.text(started.id), try jsonText(started), .text(replicaID), .double(configuration.leaseSeconds)])
                try c.query("UPDATE stylist_queue_clock SET version = nextval('stylist_change_seq') WHERE id = 1")
                try c.notify(channel: Schema.jobChannel, payload: started.id)
                try c.notify(channel: Schema.queueChannel, payload: "left")
                return started
            }
        }
        guard let record else { return nil }
        let state = RunState(record: record, now: Self.uptime())
        cond.withLock { running[record.id] = state }
        logger.info("job started", metadata: ["job": "\(record.id)", "attempt": "\(record.attempts)", "replica": "\(replicaID)"])
        return (record, state)
    }

    func run(_ record: JobRecord, _ state: RunState) {
        guard let executor else { return }
        let progress = JobProgress(onReport: { [weak self] f in self?.reportProgress(state, f) },
                                   isCanceled: { [weak self] in self?.isCanceled(state) ?? true })
        // Inputs and registered styles are read from the database: when it is away at that moment,
        // the job runs again once it is back instead of failing (an accepted job is not lost to an
        // outage). The executor has produced nothing yet when its reads fail, so running it again is safe.
        var backoff = Backoff(minimum: 0.2, maximum: 5)
        var outcome: Result<JobResult, Error>
        while true {
            do {
                outcome = .success(try executor.execute(record, blobs: blobStore, progress: progress))
            } catch {
                outcome = .failure(error)
                if !isCanceled(state), waitToRetry(error, &backoff), !isCanceled(state) { continue }
            }
            break
        }
        finish(state, outcome)
    }

    func isCanceled(_ state: RunState) -> Bool {
        cond.withLock { state.cancelRequested || state.abandoned }
    }

    /// Persists progress at most every `progressPersistInterval` (a report in between is written
    /// when the interval ends); each write notifies watchers on every replica.
    func reportProgress(_ state: RunState, _ fraction: Double) {
        cond.lock()
        guard !state.abandoned, state.record.progress != fraction else {
            cond.unlock()
            return
        }
        state.record.progress = fraction
        let wait = configuration.progressPersistInterval - (Self.uptime() - state.lastPersist)
        if wait > 0 {
            let schedule = !state.persistScheduled
            state.persistScheduled = true
            cond.unlock()
            if schedule {
                DispatchQueue.global().asyncAfter(deadline: .now() + wait) { [weak self] in self?.persistProgress(state) }
            }
            return
        }
        cond.unlock()
        persistProgress(state)
    }

    func persistProgress(_ state: RunState) {
        cond.lock()
        state.persistScheduled = false
        state.lastPersist = Self.uptime()
        let record = state.record
        let live = !state.abandoned && running[record.id] === state
        cond.unlock()
        guard live else { return }
        do {
            try database.run { c in
                try c.transaction { c in
                    let rows = try c.query("""
                        UPDATE stylist_jobs SET record = $2, version = nextval('stylist_change_seq')
                        WHERE id = $1 AND lease_owner = $3 AND status = 'running' RETURNING id
                        """, [.text(record.id), try jsonText(record), .text(replicaID)])
                    if !rows.isEmpty { try c.notify(channel: Schema.jobChannel, payload: record.id) }
                }
            }
        } catch {
            logger.debug("could not persist progress", metadata: ["job": "\(record.id)", "error": "\(error)"])
        }
    }

    /// Stores the outcome and the terminal record, retrying while the database is away: an
    /// accepted job's result is not given up unless the replica stops (then the lease lapses
    /// and another replica runs the job again).
    func finish(_ state: RunState, _ outcome: Result<JobResult, Error>) {
        let id = state.record.id
        let (abandoned, canceled) = cond.withLock { (state.abandoned, state.cancelRequested) }
        if abandoned {
            cond.withLock { if running[id] === state { running[id] = nil }; cond.broadcast() }
            if case .success(let r) = outcome { JobLifecycle.discard(r) }
            logger.info("job result discarded: the lease was lost or the replica is stopping", metadata: ["job": "\(id)"])
            return
        }
        var backoff = Backoff(minimum: 0.2, maximum: 5)
        let record = JobLifecycle.finished(state.record, outcome: outcome, canceled: canceled, blobs: blobStore,
                                           ttl: configuration.ttl, logger: logger,
                                           retryStore: { [self] error in waitToRetry(error, &backoff) })
        var saved = false
        while !saved {
            do {
                saved = try database.run { c in
                    try c.transaction { c in
                        let rows = try c.query("""
                            UPDATE stylist_jobs SET status = $2, record = $3, version = nextval('stylist_change_seq'),
                                lease_owner = NULL, lease_expires = NULL, cancel_requested = false, expires_at = $5
                            WHERE id = $1 AND lease_owner = $4 AND status = 'running' RETURNING id
                            """, [.text(id), .text(record.status.rawValue), try jsonText(record), .text(replicaID),
                                  record.expiresAt.map(PostgresValue.date)])
                        if !rows.isEmpty { try c.notify(channel: Schema.jobChannel, payload: id) }
                        return !rows.isEmpty
                    }
                }
                if !saved {
                    logger.warning("job finished after its lease was lost; the outcome is discarded", metadata: ["job": "\(id)"])
                    break
                }
            } catch where waitToRetry(error, &backoff) {
                continue
            } catch {
                logger.error("could not persist finished job", metadata: ["job": "\(id)", "error": "\(error)"])
                break
            }
        }
        if saved { JobLifecycle.removeLeftovers(of: record, blobs: blobStore) }

        cond.lock()
        if running[id] === state { running[id] = nil }
        let seconds = max(0, Self.uptime() - state.startedUptime)
        if saved {
            finishedCounts[record.status, default: 0] += 1
            durationCount += 1
            durationSum += seconds
            recentDurations.append(seconds)
            if recentDurations.count > 100 { recentDurations.removeFirst(recentDurations.count - 100) }
        }
        cond.broadcast()
        cond.unlock()
        guard saved else { return }
        JobLifecycle.logFinished(record, seconds: seconds, logger: logger)
        configuration.onFinished?(record)
    }

    /// True (after waiting) when `error` means the database is away and the replica is not stopping.
    func waitToRetry(_ error: Error, _ backoff: inout Backoff) -> Bool {
        guard error is JobStoreUnavailable, !cond.withLock({ stopping }) else { return false }
        let delay = backoff.failed()
        logger.warning("database unavailable; retrying", metadata: ["error": "\(error)", "in_seconds": "\(delay)"])
        Thread.sleep(forTimeInterval: delay)
        return true
    }
}
