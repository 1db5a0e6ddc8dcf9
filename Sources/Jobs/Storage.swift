import Foundation
#if canImport(Glibc)
import Glibc
#endif

// MARK: - The storage seam
//
// `JobSystem` talks to storage only through the two protocols below. The embedded default
// is the local data directory (`LocalJobStore`, `LocalBlobStore`):
//
//     DATA/jobs/<id>/job.json        the record (JSON, replaced atomically)
//     DATA/jobs/<id>/content         input blobs (names chosen by the app)
//     DATA/jobs/<id>/style0 ...
//     DATA/jobs/<id>/result          the result blob
//     DATA/tombstones/<id>.json      expired jobs (answer 410), removed after a longer horizon
//     DATA/styles/<id>/...           the style library (`StyleLibrary`)
//
// The PostgreSQL backend (`JobsPostgres`) replaces the whole `JobSystem`, not these two
// protocols: with many replicas the queue itself has to live in the database. In this process
// the queue order is the records' `sequence`, held in memory by `JobSystem` and rebuilt from
// `loadAll()` on start.

/// Durable job records and tombstones (the queue order is the records' `sequence`).
public protocol JobStore: AnyObject, Sendable {
    /// Durably creates or replaces a record; when it returns, the record survives a crash.
    func save(_ record: JobRecord) throws
    /// Replaces the record of a job a worker is starting (`running`, one more attempt). When it
    /// returns, the record survives a crash of the process and is never torn; a crash of the
    /// machine may still bring back the record it replaced (`queued`), which recovery runs again
    /// just as it would the `running` one (only the attempt count, the crash-loop breaker for
    /// jobs that crash the process, is behind). The job's next save (`save`) makes both durable.
    /// Defaults to `save`.
    func saveStarted(_ record: JobRecord) throws
    /// Every record, for recovery at start; may clean up half-written state first.
    func loadAll() throws -> [JobRecord]
    /// Removes a record (missing is not an error).
    func delete(id: String) throws
    /// Durably writes a tombstone for an expired job.
    func saveTombstone(_ tombstone: JobTombstone) throws
    /// Every tombstone.
    func loadTombstones() throws -> [JobTombstone]
    /// Removes a tombstone (missing is not an error).
    func deleteTombstone(id: String) throws
}

extension JobStore {
    public func saveStarted(_ record: JobRecord) throws { try save(record) }
}

/// Durable per-job binary objects (inputs, results), addressed by job id and name.
public protocol BlobStore: AnyObject, Sendable {
    /// Durably stores `bytes` as `name` of `job`, replacing any previous blob.
    func put(_ bytes: [UInt8], job: String, name: String) throws
    /// Durably takes ownership of the file at `file` (moved, not copied through memory).
    func put(file: URL, job: String, name: String) throws
    /// The blob's bytes, or nil when absent.
    func get(job: String, name: String) throws -> [UInt8]?
    /// A local file holding the blob (for streaming or mapping), or nil when absent.
    func path(job: String, name: String) -> URL?
    /// Removes one blob (missing is not an error).
    func delete(job: String, name: String) throws
    /// Removes every blob of `job`.
    func deleteAll(job: String) throws
}

/// `JobStore` on the local data directory: `<root>/<id>/job.json`.
public final class LocalJobStore: JobStore, @unchecked Sendable {
    /// The directory holding one sub-directory per job (`DATA/jobs`).
    public let root: URL
    /// Where tombstones live (`DATA/tombstones`).
    public let tombstoneRoot: URL
    static let recordName = "job.json"

    /// Opens (creating if needed) a store with job directories under `root`.
    public init(root: URL, tombstoneRoot: URL) throws {
        self.root = root
        self.tombstoneRoot = tombstoneRoot
        try DurableFS.makeDirectory(root)
        try DurableFS.makeDirectory(tombstoneRoot)
    }

    private func recordURL(_ id: String) -> URL {
        root.appendingPathComponent(id).appendingPathComponent(Self.recordName)
    }

    /// Writes `job.json` atomically (temp file, fsync, rename, directory fsync).
    public func save(_ record: JobRecord) throws {
        guard Names.isValidID(record.id) else { throw InvalidBlobName(name: record.id) }
        let dir = root.appendingPathComponent(record.id)
        try DurableFS.makeDirectory(dir)
        try DurableFS.writeAtomically(try JobsJSON.encode(record), to: recordURL(record.id))
    }

    /// `job.json` written and fsync'd, then renamed into place, without the directory fsync
    /// (the protocol's `saveStarted`: the job's final record is saved in the same directory,
    /// with its fsync).
    public func saveStarted(_ record: JobRecord) throws {
        guard Names.isValidID(record.id) else { throw InvalidBlobName(name: record.id) }
        try DurableFS.makeDirectory(root.appendingPathComponent(record.id))
        try DurableFS.writeAtomically(try JobsJSON.encode(record), to: recordURL(record.id), syncDirectory: false)
    }

    /// Reads every record; removes leftover temp files and job directories without a record
    /// (a submission interrupted before it was acknowledged). Unreadable records are skipped.
    public func loadAll() throws -> [JobRecord] {
        var records: [JobRecord] = []
        for name in DurableFS.listDirectory(root) {
            let dir = root.appendingPathComponent(name)
            if name.hasPrefix(DurableFS.tempPrefix) || !Names.isValidID(name) {
                if name.hasPrefix(DurableFS.tempPrefix) { try? DurableFS.removeTree(dir) }
                continue
            }
            for entry in DurableFS.listDirectory(dir) where entry.hasPrefix(DurableFS.tempPrefix) {
                try? DurableFS.removeFile(dir.appendingPathComponent(entry))
            }
            guard let bytes = try DurableFS.readFile(recordURL(name)) else {
                try? DurableFS.removeTree(dir)
                continue
            }
            if let record = try? JobsJSON.decode(JobRecord.self, from: bytes), record.id == name {
                records.append(record)
            }
        }
        return records
    }

    /// Removes `job.json`, then the job directory if nothing else is left in it.
    public func delete(id: String) throws {
        guard Names.isValidID(id) else { return }
        let dir = root.appendingPathComponent(id)
        try DurableFS.removeFile(recordURL(id))
        if rmdir(dir.path) == 0 { try? DurableFS.fsyncDirectory(root) }
    }

    /// Writes `<tombstoneRoot>/<id>.json` atomically.
    public func saveTombstone(_ tombstone: JobTombstone) throws {
        try DurableFS.writeAtomically(try JobsJSON.encode(tombstone),
                                      to: tombstoneRoot.appendingPathComponent("\(tombstone.id).json"))
    }

    /// Reads every tombstone; removes leftover temp files.
    public func loadTombstones() throws -> [JobTombstone] {
        var result: [JobTombstone] = []
        for name in DurableFS.listDirectory(tombstoneRoot) {
            let url = tombstoneRoot.appendingPathComponent(name)
            if name.hasPrefix(DurableFS.tempPrefix) {
                try? DurableFS.removeFile(url)
                continue
            }
            guard name.hasSuffix(".json"), let bytes = try DurableFS.readFile(url),
                  let t = try? JobsJSON.decode(JobTombstone.self, from: bytes) else { continue }
            result.append(t)
        }
        return result
    }

    /// Removes a tombstone file.
    public func deleteTombstone(id: String) throws {
        guard Names.isValidID(id) else { return }
        try DurableFS.removeFile(tombstoneRoot.appendingPathComponent("\(id).json"))
    }
}

/// `BlobStore` on the local data directory: `<root>/<job>/<name>`.
public final class LocalBlobStore: BlobStore, @unchecked Sendable {
    /// The directory holding one sub-directory per job (shared with `LocalJobStore`).
    public let root: URL

    /// Opens (creating if needed) a store under `root`.
    public init(root: URL) throws {
        self.root = root
        try DurableFS.makeDirectory(root)
    }

    private func url(_ job: String, _ name: String) throws -> URL {
        guard Names.isValidID(job) else { throw InvalidBlobName(name: job) }
        guard Names.isValidBlobName(name), name != LocalJobStore.recordName else { throw InvalidBlobName(name: name) }
        return root.appendingPathComponent(job).appendingPathComponent(name)
    }

    /// Writes the blob atomically and durably.
    public func put(_ bytes: [UInt8], job: String, name: String) throws {
        let target = try url(job, name)
        try DurableFS.makeDirectory(target.deletingLastPathComponent())
        try DurableFS.writeAtomically(bytes, to: target)
    }

    /// Fsyncs and renames the file in (streams a copy only across file systems).
    public func put(file: URL, job: String, name: String) throws {
        let target = try url(job, name)
        try DurableFS.makeDirectory(target.deletingLastPathComponent())
        try DurableFS.moveIn(file, to: target)
    }

    /// Reads the whole blob.
    public func get(job: String, name: String) throws -> [UInt8]? {
        try DurableFS.readFile(try url(job, name))
    }

    /// The blob's file, if it exists.
    public func path(job: String, name: String) -> URL? {
        guard let u = try? url(job, name), FileManager.default.fileExists(atPath: u.path) else { return nil }
        return u
    }

    /// Unlinks the blob.
    public func delete(job: String, name: String) throws {
        try DurableFS.removeFile(try url(job, name))
    }

    /// Unlinks every blob of the job (everything but the record), then the directory if empty.
    public func deleteAll(job: String) throws {
        guard Names.isValidID(job) else { return }
        let dir = root.appendingPathComponent(job)
        for name in DurableFS.listDirectory(dir) where name != LocalJobStore.recordName {
            let u = dir.appendingPathComponent(name)
            var isDir: ObjCBool = false
            if FileManager.default.fileExists(atPath: u.path, isDirectory: &isDir), isDir.boolValue {
                try DurableFS.removeTree(u)
            } else {
                try DurableFS.removeFile(u)
            }
        }
        if rmdir(dir.path) == 0 { try? DurableFS.fsyncDirectory(root) }
    }
}
