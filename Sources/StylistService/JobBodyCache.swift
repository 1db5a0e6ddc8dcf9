import Foundation
import Jobs

/// Encoded job answers, kept per job and version: a job polled many times between two changes is
/// presented and encoded once per change. A body is reused only for the very snapshot it was made
/// from (version, queue position and record all equal), so it is current whatever a job store
/// does with versions; comparing a record costs far less than presenting and encoding it.
final class JobBodyCache: @unchecked Sendable {
    private struct Entry {
        let snapshot: JobSnapshot
        let body: [UInt8]
    }

    private let lock = NSLock()
    private var entries: [String: Entry] = [:]
    /// Most jobs kept; past it the cache starts over (the bodies are a few hundred bytes each).
    let capacity: Int

    /// An empty cache holding up to `capacity` jobs.
    init(capacity: Int = 1024) { self.capacity = capacity }

    /// The cached body of `snapshot`, or `make()`'s, remembered for the next poll.
    func body(for snapshot: JobSnapshot, make: () -> [UInt8]) -> [UInt8] {
        let id = snapshot.record.id
        lock.lock()
        if let hit = entries[id], hit.snapshot.version == snapshot.version,
           hit.snapshot.queuePosition == snapshot.queuePosition, hit.snapshot.record == snapshot.record {
            lock.unlock()
            return hit.body
        }
        lock.unlock()
        let body = make()
        lock.lock()
        if entries.count >= capacity { entries.removeAll(keepingCapacity: true) }
        entries[id] = Entry(snapshot: snapshot, body: body)
        lock.unlock()
        return body
    }
}

extension API {
    /// The job's JSON answer, encoded (with the trailing newline of every JSON answer).
    func jobBody(_ snapshot: JobSnapshot) -> [UInt8] {
        jobBodies.body(for: snapshot) { jobJSON(snapshot).bytes }
    }
}
