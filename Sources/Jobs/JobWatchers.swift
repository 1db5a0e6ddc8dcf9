import Foundation

/// The clients watching jobs: long polls (`wait`) and event streams (`stream`), fed by `publish`.
///
/// Both job-system backends use it. It has its own lock, taken after the backend's own lock
/// when a backend nests them, and it never calls back into the backend. Continuations resume
/// and streams finish outside the lock. `publish` ignores a snapshot not newer than the last
/// one it saw for the job, so a backend may publish from several threads in any order.
public final class JobWatchers: @unchecked Sendable {
    private struct Waiter {
        var after: UInt64
        var continuation: CheckedContinuation<JobSnapshot?, Never>
    }

    private let lock = NSLock()
    private var waiters: [String: [UInt64: Waiter]] = [:]
    private var streams: [String: [UInt64: AsyncStream<JobSnapshot>.Continuation]] = [:]
    private var lastVersion: [String: UInt64] = [:]
    private var canceledTokens: Set<UInt64> = []
    private var nextToken: UInt64 = 0
    private var closed = false

    /// An empty registry.
    public init() {}

    /// Long polls waiting right now.
    public var waitingCount: Int {
        lock.lock()
        defer { lock.unlock() }
        return waiters.values.reduce(0) { $0 + $1.count }
    }

    /// The ids someone is watching (a backend re-reads them after missing notifications).
    public var watchedIDs: [String] {
        lock.lock()
        defer { lock.unlock() }
        return Array(Set(waiters.keys).union(streams.keys))
    }

    /// True when someone watches `id`.
    public func isWatched(_ id: String) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        return waiters[id] != nil || streams[id] != nil
    }

    /// Suspends until a snapshot newer than `after` is published for the job, the job is
    /// removed (nil), `timeout` passes or the task is canceled (the latest snapshot), then
    /// returns. `current` is the job as the caller just read it: returned at once when it is
    /// terminal or already newer than `after`. `reread` gives the job's state on a timeout or
    /// cancellation. `recheck` runs once the waiter is registered, so a backend that read
    /// `current` without holding its own lock can publish what changed in between.
    public func wait(current: JobSnapshot, after: UInt64, timeout: Double,
                     reread: @escaping @Sendable () -> JobSnapshot?,
                     recheck: (@Sendable () -> Void)? = nil) async -> JobSnapshot? {
        let id = current.record.id
        let token = allocateToken()
        defer { forgetToken(token) }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<JobSnapshot?, Never>) in
                lock.lock()
                let latest = max(current.version, lastVersion[id] ?? 0)
                if current.record.status.isTerminal || latest > after || timeout <= 0 || closed
                    || canceledTokens.remove(token) != nil {
                    lock.unlock()
                    continuation.resume(returning: current)
                    return
                }
                waiters[id, default: [:]][token] = Waiter(after: after, continuation: continuation)
                lock.unlock()
                recheck?()
                DispatchQueue.global().asyncAfter(deadline: .now() + min(timeout, 86400)) { [weak self] in
                    self?.release(id: id, token: token, reread: reread, canceled: false)
                }
            }
        } onCancel: {
            self.release(id: id, token: token, reread: reread, canceled: true)
        }
    }

    /// A stream that yields `current` first, then every newer published snapshot in order, and
    /// finishes after a terminal one or when the job is removed.
    public func stream(current: JobSnapshot) -> AsyncStream<JobSnapshot> {
        let id = current.record.id
        let (stream, continuation) = AsyncStream.makeStream(of: JobSnapshot.self, bufferingPolicy: .bufferingNewest(4096))
        let token = allocateToken()
        // Unregistered off this thread: onTermination can run inside a task's cancellation, holding
        // that task's status lock, while `publish` yields to this stream under `lock` and needs the
        // same task lock to wake its consumer. Until the block runs, yields to the finished
        // continuation are dropped.
        continuation.onTermination = { [weak self] _ in
            guard let watchers = self else { return }
            DispatchQueue.global().async { watchers.removeStream(id: id, token: token) }
        }
        continuation.yield(current)
        lock.lock()
        if current.record.status.isTerminal || closed {
            lock.unlock()
            continuation.finish()
            return stream
        }
        lastVersion[id] = max(lastVersion[id] ?? 0, current.version)
        streams[id, default: [:]][token] = continuation
        lock.unlock()
        return stream
    }

    /// A newer state of a job: wakes its long polls and feeds its streams (which finish after a
    /// terminal state). Older or repeated versions are ignored.
    public func publish(_ snapshot: JobSnapshot) {
        let id = snapshot.record.id
        var resumes: [CheckedContinuation<JobSnapshot?, Never>] = []
        var finished: [AsyncStream<JobSnapshot>.Continuation] = []
        lock.lock()
        guard waiters[id] != nil || streams[id] != nil else {
            lastVersion[id] = nil
            lock.unlock()
            return
        }
        if let last = lastVersion[id], snapshot.version <= last {
            lock.unlock()
            return
        }
        lastVersion[id] = snapshot.version
        if let ws = waiters[id] {
            var remaining = ws
            for (token, w) in ws where snapshot.version > w.after {
                remaining[token] = nil
                resumes.append(w.continuation)
            }
            waiters[id] = remaining.isEmpty ? nil : remaining
        }
        if let ss = streams[id] {
            for s in ss.values { s.yield(snapshot) }
            if snapshot.record.status.isTerminal {
                streams[id] = nil
                finished = Array(ss.values)
            }
        }
        if waiters[id] == nil && streams[id] == nil { lastVersion[id] = nil }
        lock.unlock()
        for c in resumes { c.resume(returning: snapshot) }
        for s in finished { s.finish() }
    }

    /// The job is gone (deleted or expired): its long polls return nil, its streams finish.
    public func removed(id: String) {
        lock.lock()
        let ws = waiters.removeValue(forKey: id)
        let ss = streams.removeValue(forKey: id)
        lastVersion[id] = nil
        lock.unlock()
        for w in (ws ?? [:]).values { w.continuation.resume(returning: nil) }
        for s in (ss ?? [:]).values { s.finish() }
    }

    /// Shutting down: every long poll returns the job as `latest` gives it, every stream
    /// finishes, and later calls return at once.
    public func close(latest: (String) -> JobSnapshot?) {
        lock.lock()
        closed = true
        let ws = waiters
        let ss = streams
        waiters = [:]
        streams = [:]
        lastVersion = [:]
        lock.unlock()
        for (id, group) in ws {
            let snap = latest(id)
            for w in group.values { w.continuation.resume(returning: snap) }
        }
        for group in ss.values { for s in group.values { s.finish() } }
    }

    private func allocateToken() -> UInt64 {
        lock.lock()
        defer { lock.unlock() }
        nextToken += 1
        return nextToken
    }

    private func forgetToken(_ token: UInt64) {
        lock.lock()
        canceledTokens.remove(token)
        lock.unlock()
    }

    private func removeStream(id: String, token: UInt64) {
        lock.lock()
        streams[id]?[token] = nil
        if streams[id]?.isEmpty == true { streams[id] = nil }
        if waiters[id] == nil && streams[id] == nil { lastVersion[id] = nil }
        lock.unlock()
    }

    /// Ends one long poll on timeout or cancellation with the job as `reread` gives it; a
    /// cancellation that comes before registration is remembered so the registration returns
    /// at once.
    private func release(id: String, token: UInt64, reread: @Sendable () -> JobSnapshot?, canceled: Bool) {
        lock.lock()
        if let waiter = waiters[id]?.removeValue(forKey: token) {
            if waiters[id]?.isEmpty == true { waiters[id] = nil }
            if waiters[id] == nil && streams[id] == nil { lastVersion[id] = nil }
            lock.unlock()
            waiter.continuation.resume(returning: reread())
        } else {
            if canceled { canceledTokens.insert(token) }
            lock.unlock()
        }
    }
}
