import Foundation
import Logging

/// The worker threads: take the oldest queued job, run the executor, record the outcome.
extension JobSystem {
    // MARK: Workers

    static func uptime() -> Double { ProcessInfo.processInfo.systemUptime }

    func workerLoop() {
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
            entry.record = JobLifecycle.started(entry.record)
            entries[id] = entry
            let state = RunState(id: id, now: Self.uptime())
            running[id] = state
            changedLocked(id)
            unlockAndRunDeferred()
            // Before the executor touches the inputs, so a job that crashes the process is
            // counted (`maxAttempts`); it need not survive a crash of the machine (`saveStarted`).
            do { try jobStore.saveStarted(entry.record) } catch {
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
            if case .success(let r) = outcome { JobLifecycle.discard(r) }
            return
        }
        let canceled = state.cancelRequested
        cond.unlock()

        let record = JobLifecycle.finished(entry.record, outcome: outcome, canceled: canceled, blobs: blobs,
                                           ttl: configuration.ttl, logger: logger)
        do {
            try jobStore.save(record)
            // Inputs go only once the final record is durable: if the save fails (a full disk), the
            // stored record still says queued/running and the job runs again on the next start.
            JobLifecycle.removeLeftovers(of: record, blobs: blobs)
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

        JobLifecycle.logFinished(record, seconds: seconds, logger: logger)
        configuration.onFinished?(record)
    }
}
