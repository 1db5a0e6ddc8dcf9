import Foundation
import Jobs
import Postgres
#if canImport(Glibc)
import Glibc
#endif

/// `BlobStore` in PostgreSQL: each blob is rows of 1 MiB bytea chunks in `stylist_blobs`, so no
/// upload or result is ever one allocation. `path` materialises a blob in a local cache
/// directory (the result a client downloads, an input a worker reads); a blob moved in from a
/// file stays in the cache as its local copy.
public final class PostgresBlobStore: BlobStore, @unchecked Sendable {
    private let database: JobDatabase
    private let space: String
    /// The local cache of this replica (`DATA/cache/<space>`).
    public let cacheRoot: URL

    init(database: JobDatabase, space: String, cacheRoot: URL) throws {
        self.database = database
        self.space = space
        self.cacheRoot = cacheRoot
        try FileManager.default.createDirectory(at: cacheRoot, withIntermediateDirectories: true)
    }

    private func cacheURL(_ job: String, _ name: String) -> URL? {
        guard Names.isValidID(job), Names.isValidBlobName(name) else { return nil }
        return cacheRoot.appendingPathComponent(job).appendingPathComponent(name)
    }

    private static let insertSQL = "INSERT INTO stylist_blobs (space, owner_id, name, seq, data) VALUES ($1, $2, $3, $4, $5)"
    private static let deleteSQL = "DELETE FROM stylist_blobs WHERE space = $1 AND owner_id = $2 AND name = $3"
    private static let selectSQL = "SELECT data FROM stylist_blobs WHERE space = $1 AND owner_id = $2 AND name = $3 ORDER BY seq"

    /// Stores `bytes` as `name` of `job`, replacing any previous blob, in one transaction.
    public func put(_ bytes: [UInt8], job: String, name: String) throws {
        guard cacheURL(job, name) != nil else { throw InvalidBlobName(name: name) }
        try database.run { c in
            try c.transaction { c in
                try c.query(Self.deleteSQL, [.text(space), .text(job), .text(name)])
                var offset = 0
                try c.writeChunks(insertSQL: Self.insertSQL, keyParams: [.text(space), .text(job), .text(name)]) { buffer in
                    let n = min(buffer.count, bytes.count - offset)
                    if n > 0 { bytes.withUnsafeBytes { buffer.baseAddress!.copyMemory(from: $0.baseAddress! + offset, byteCount: n) } }
                    offset += n
                    return n
                }
            }
        }
        if let url = cacheURL(job, name) { try? FileManager.default.removeItem(at: url) }
    }

    /// Streams the file into the database, then keeps it as this replica's cached copy.
    public func put(file: URL, job: String, name: String) throws {
        guard let cached = cacheURL(job, name) else { throw InvalidBlobName(name: name) }
        try database.run { c in
            try c.transaction { c in
                try c.query(Self.deleteSQL, [.text(space), .text(job), .text(name)])
                try c.writeChunks(from: file, insertSQL: Self.insertSQL, keyParams: [.text(space), .text(job), .text(name)])
            }
        }
        try? FileManager.default.createDirectory(at: cached.deletingLastPathComponent(), withIntermediateDirectories: true)
        try? FileManager.default.removeItem(at: cached)
        if rename(file.path, cached.path) != 0 { try? FileManager.default.removeItem(at: file) }
    }

    /// The blob's bytes, or nil when absent.
    public func get(job: String, name: String) throws -> [UInt8]? {
        guard let url = try localFile(job: job, name: name) else { return nil }
        guard let data = FileManager.default.contents(atPath: url.path) else { return nil }
        return [UInt8](data)
    }

    /// A local file holding the blob (downloaded into the cache when needed), or nil.
    public func path(job: String, name: String) -> URL? {
        try? localFile(job: job, name: name)
    }

    private func localFile(job: String, name: String) throws -> URL? {
        guard let cached = cacheURL(job, name) else { return nil }
        if FileManager.default.fileExists(atPath: cached.path) { return cached }
        try FileManager.default.createDirectory(at: cached.deletingLastPathComponent(), withIntermediateDirectories: true)
        let partial = cached.deletingLastPathComponent().appendingPathComponent(".part-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: partial) }
        let size = try database.run { c in
            try c.readChunks(selectSQL: Self.selectSQL, keyParams: [.text(space), .text(job), .text(name)], to: partial)
        }
        guard size > 0 else { return nil }
        guard rename(partial.path, cached.path) == 0 else { throw StorageError("rename", "blob cache") }
        return cached
    }

    /// Removes one blob (missing is not an error).
    public func delete(job: String, name: String) throws {
        try database.run { c in _ = try c.query(Self.deleteSQL, [.text(space), .text(job), .text(name)]) }
        if let url = cacheURL(job, name) { try? FileManager.default.removeItem(at: url) }
    }

    /// Removes every blob of `job`.
    public func deleteAll(job: String) throws {
        try database.run { c in _ = try c.query("DELETE FROM stylist_blobs WHERE space = $1 AND owner_id = $2", [.text(space), .text(job)]) }
        dropCache(job: job)
    }

    /// Forgets this replica's cached copies of `job`'s blobs.
    func dropCache(job: String) {
        guard Names.isValidID(job) else { return }
        try? FileManager.default.removeItem(at: cacheRoot.appendingPathComponent(job))
    }

    /// Removes cached copies older than `age` seconds (other replicas may have deleted the blobs).
    func pruneCache(olderThan age: TimeInterval) {
        let horizon = Date().addingTimeInterval(-age)
        for name in (try? FileManager.default.contentsOfDirectory(atPath: cacheRoot.path)) ?? [] {
            let dir = cacheRoot.appendingPathComponent(name)
            let modified = (try? FileManager.default.attributesOfItem(atPath: dir.path)[.modificationDate] as? Date) ?? nil
            if let modified, modified < horizon { try? FileManager.default.removeItem(at: dir) }
        }
    }
}
