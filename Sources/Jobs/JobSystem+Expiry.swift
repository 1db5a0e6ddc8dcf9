import Foundation
import Logging

/// Expiry of finished jobs and tombstones, and shutdown.
extension JobSystem {
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
            entry.record = JobLifecycle.requeued(entry.record)
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

        watchers.close(latest: { [self] id in snapshot(id: id) })
    }
}
