import Foundation
import Jobs
import Logging
import Postgres

/// Canceling, leases, expiry and shutdown.
extension PostgresJobQueue {
    // MARK: Canceling and deleting

    /// Removes a queued job, asks the replica running a job to stop it, or deletes a finished
    /// job with its blobs. See `CancelOutcome`.
    public func cancel(id: String) throws -> CancelOutcome {
        guard Names.isValidID(id) else { return .notFound }
        for _ in 0..<3 {
            guard let snap = try read(id: id) else {
                if case .expired(let t) = try lookup(id: id) { return .expired(t) }
                return .notFound
            }
            switch snap.record.status {
            case .queued:
                // The removal takes a version of its own, newer than anything a watcher was shown.
                let removedAt: Int64? = try database.run { c in
                    try c.transaction { c in
                        let rows = try c.query("DELETE FROM stylist_jobs WHERE id = $1 AND status = 'queued' RETURNING id", [.text(id)])
                        guard !rows.isEmpty else { return nil }
                        let version = try c.query("""
                            UPDATE stylist_queue_clock SET version = nextval('stylist_change_seq') WHERE id = 1 RETURNING version
                            """).first?.int64("version")
                        try c.notify(channel: Schema.jobChannel, payload: id)
                        try c.notify(channel: Schema.queueChannel, payload: "left")
                        return version ?? 0
                    }
                }
                guard let removedAt else { continue }   // a worker claimed it meanwhile: look again
                try? blobStore.deleteAll(job: id)
                var final = snap
                final.record.status = .canceled
                final.record.finishedAt = JobsJSON.now()
                final.queuePosition = nil
                final.version = max(snap.version + 1, UInt64(max(0, removedAt)))
                watchers.publish(final)
                watchers.removed(id: id)
                cond.withLock { finishedCounts[.canceled, default: 0] += 1 }
                logger.info("job canceled", metadata: ["job": "\(id)", "was": "queued"])
                return .canceled(final)
            case .running:
                let asked = try database.run { c in
                    try c.transaction { c in
                        let rows = try c.query("""
                            UPDATE stylist_jobs SET cancel_requested = true WHERE id = $1 AND status = 'running' RETURNING id
                            """, [.text(id)])
                        if !rows.isEmpty { try c.notify(channel: Schema.cancelChannel, payload: id) }
                        return !rows.isEmpty
                    }
                }
                guard asked else { continue }
                cond.withLock { running[id]?.cancelRequested = true }
                logger.info("job cancel requested", metadata: ["job": "\(id)"])
                return .cancelRequested(snap)
            case .succeeded, .failed, .canceled:
                try database.run { c in
                    try c.transaction { c in
                        try c.query("DELETE FROM stylist_jobs WHERE id = $1", [.text(id)])
                        try c.notify(channel: Schema.jobChannel, payload: id)
                    }
                }
                try? blobStore.deleteAll(job: id)
                watchers.removed(id: id)
                logger.info("job deleted", metadata: ["job": "\(id)"])
                return .deleted
            }
        }
        throw JobStoreUnavailable(reason: "the job kept changing while it was being canceled")
    }

    // MARK: Leases and expiry

    /// Renews this replica's leases every third of `leaseSeconds`, hands lapsed leases of any
    /// replica back to the queue, and sweeps expired jobs every `sweepInterval`.
    func maintenanceLoop() {
        defer { threadExited() }
        let period = max(0.2, min(configuration.leaseSeconds / 3, configuration.pollInterval))
        var lastSweep = -Double.infinity
        var lastPrune = Self.uptime()
        while true {
            let stop = cond.withLock { () -> Bool in
                if !stopping { _ = cond.wait(until: Date().addingTimeInterval(period)) }
                return stopping
            }
            if stop { return }
            do {
                try renewLeases()
                try requeueLapsed()
                if configuration.sweepInterval > 0 && Self.uptime() - lastSweep >= configuration.sweepInterval {
                    lastSweep = Self.uptime()
                    sweep(now: Date())
                }
            } catch {
                logger.warning("lease maintenance failed", metadata: ["error": "\(error)"])
            }
            if Self.uptime() - lastPrune > 600 {
                lastPrune = Self.uptime()
                blobStore.pruneCache(olderThan: 3600)
            }
        }
    }

    /// Extends the leases of the jobs this replica runs; a job whose lease another replica
    /// took back is abandoned here, and a cancel request that arrived unnoticed is applied.
    func renewLeases() throws {
        // Only jobs claimed before the renewal can be judged by it: a claim that commits while
        // the UPDATE runs is missing from its answer without being lost.
        let before = cond.withLock { Set(running.keys) }
        guard !before.isEmpty else { return }
        let rows = try database.run { c in
            try c.query("""
                UPDATE stylist_jobs SET lease_expires = now() + make_interval(secs => $2)
                WHERE lease_owner = $1 AND status = 'running' RETURNING id, cancel_requested
                """, [.text(replicaID), .double(configuration.leaseSeconds)])
        }
        var held: [String: Bool] = [:]
        for row in rows { if let id = try row.string("id") { held[id] = try row.bool("cancel_requested") ?? false } }
        cond.lock()
        for (id, state) in running where before.contains(id) {
            if let cancel = held[id] {
                if cancel { state.cancelRequested = true }
            } else if !state.abandoned {
                state.abandoned = true
                logger.warning("lease lost; the job runs elsewhere", metadata: ["job": "\(id)"])
            }
        }
        cond.unlock()
    }

    /// Running jobs whose lease lapsed (their replica died or lost the database) go back to
    /// the queue, or fail once they have started `maxAttempts` times.
    func requeueLapsed() throws {
        let changed: [String] = try database.run { c in
            try c.transaction { c in
                let rows = try c.query("""
                    SELECT id, record FROM stylist_jobs WHERE status = 'running' AND lease_expires < now()
                    ORDER BY seq FOR UPDATE SKIP LOCKED LIMIT 100
                    """)
                var ids: [String] = []
                for row in rows {
                    let record = try row.json(JobRecord.self, "record")
                    let next = record.attempts >= configuration.maxAttempts
                        ? JobLifecycle.abandoned(record, ttl: configuration.ttl) : JobLifecycle.requeued(record)
                    try c.query("""
                        UPDATE stylist_jobs SET status = $2, record = $3, version = nextval('stylist_change_seq'),
                            lease_owner = NULL, lease_expires = NULL, cancel_requested = false, expires_at = $4
                        WHERE id = $1
                        """, [.text(record.id), .text(next.status.rawValue), try jsonText(next), next.expiresAt.map(PostgresValue.date)])
                    try c.notify(channel: Schema.jobChannel, payload: record.id)
                    ids.append(record.id)
                    logger.warning(next.status == .queued ? "job re-queued after its lease lapsed" : "job failed after interruptions",
                                   metadata: ["job": "\(record.id)", "attempts": "\(record.attempts)"])
                }
                if !ids.isEmpty { try c.notify(channel: Schema.queueChannel, payload: "added") }
                return ids
            }
        }
        if !changed.isEmpty { wakeWorkers() }
    }

    /// Removes finished jobs past `expiresAt` (leaving tombstones) and old tombstones; only the
    /// replica holding the sweep lock does it. Returns how many jobs expired.
    @discardableResult
    public func sweep(now: Date) -> Int {
        do {
            let expired: [String] = try database.run { c in
                try c.transaction { c in
                    guard try c.query("SELECT pg_try_advisory_xact_lock($1) AS ok", [.int(Schema.sweepLockKey)]).first?.bool("ok") == true
                    else { return [] }
                    let rows = try c.query("""
                        DELETE FROM stylist_jobs WHERE id IN (
                            SELECT id FROM stylist_jobs WHERE expires_at <= $1 AND status IN ('succeeded', 'failed', 'canceled')
                            LIMIT 1000)
                        RETURNING id
                        """, [.date(now)])
                    let ids = try rows.compactMap { try $0.string("id") }
                    for id in ids {
                        try c.query("DELETE FROM stylist_blobs WHERE space = 'job' AND owner_id = $1", [.text(id)])
                        try c.query("INSERT INTO stylist_tombstones (id, expired_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                                    [.text(id), .date(JobsJSON.normalize(now))])
                        try c.notify(channel: Schema.jobChannel, payload: id)
                    }
                    try c.query("DELETE FROM stylist_tombstones WHERE expired_at <= $1",
                                [.date(now.addingTimeInterval(-configuration.tombstoneTTL))])
                    try c.query("""
                        DELETE FROM stylist_tombstones WHERE id IN (
                            SELECT id FROM stylist_tombstones ORDER BY expired_at DESC, id DESC OFFSET $1)
                        """, [.int(configuration.maxTombstones)])
                    return ids
                }
            }
            for id in expired {
                blobStore.dropCache(job: id)
                watchers.removed(id: id)
                logger.info("job expired", metadata: ["job": "\(id)"])
            }
            return expired.count
        } catch {
            logger.error("sweep failed", metadata: ["error": "\(error)"])
            return 0
        }
    }

    // MARK: Shutdown

    /// Stops claiming, gives running jobs `grace` seconds, then hands the rest back to the
    /// queue at once (another replica takes them without waiting for the lease), wakes every
    /// watcher and stops the listener and the lease keeper.
    public func shutdown(grace: Double) {
        cond.lock()
        stopping = true
        cond.broadcast()
        let deadline = Date().addingTimeInterval(max(0, grace))
        while running.values.contains(where: { !$0.abandoned }) && Date() < deadline { _ = cond.wait(until: deadline) }
        let left = running.values.filter { !$0.abandoned }
        for state in left { state.abandoned = true }
        cond.unlock()
        for state in left {
            let record = JobLifecycle.requeued(state.record)
            do {
                try database.run { c in
                    try c.transaction { c in
                        try c.query("""
                            UPDATE stylist_jobs SET status = 'queued', record = $2, version = nextval('stylist_change_seq'),
                                lease_owner = NULL, lease_expires = NULL
                            WHERE id = $1 AND lease_owner = $3 AND status = 'running'
                            """, [.text(record.id), try jsonText(record), .text(replicaID)])
                        try c.notify(channel: Schema.jobChannel, payload: record.id)
                        try c.notify(channel: Schema.queueChannel, payload: "added")
                    }
                }
                logger.info("job handed back to the queue", metadata: ["job": "\(record.id)"])
            } catch {
                logger.error("could not hand a job back; it returns when its lease lapses",
                             metadata: ["job": "\(record.id)", "error": "\(error)"])
            }
        }
        watchers.close(latest: { [self] id in snapshot(id: id) })
        listener.stop()
        // Idle workers and the lease keeper exit at once; a worker still inside an abandoned job
        // exits when its executor returns.
        cond.lock()
        let until = Date().addingTimeInterval(2)
        while threads > left.count && Date() < until { _ = cond.wait(until: until) }
        cond.unlock()
    }
}
