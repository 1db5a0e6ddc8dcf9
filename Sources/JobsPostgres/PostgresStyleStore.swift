import Foundation
import Jobs
import Postgres

/// `StyleStore` in PostgreSQL: one row per style in `stylist_styles` (its `StyleRecord` as
/// JSON), the image and the cached style codes as blobs in the `style` space. The count and
/// byte limits are checked against the database before each registration; replicas
/// registering at the same instant may pass a limit by a few styles.
public final class PostgresStyleStore: StyleStore, @unchecked Sendable {
    private let database: JobDatabase
    private let blobs: PostgresBlobStore
    /// Most styles kept.
    public let maxCount: Int
    /// Most image bytes kept in all.
    public let maxBytes: Int
    private static let imageName = "image"

    /// The style library in `database`, its images cached under `cacheDirectory/styles`.
    public init(database: JobDatabase, cacheDirectory: URL, maxCount: Int = .max, maxBytes: Int = .max) throws {
        self.database = database
        blobs = try PostgresBlobStore(database: database, space: "style", cacheRoot: cacheDirectory.appendingPathComponent("styles"))
        self.maxCount = maxCount
        self.maxBytes = maxBytes
    }

    /// Registers a style from a file, which is moved into the database.
    public func register(imageFile: URL, metadata: StyleMetadata) throws -> StyleRecord {
        let size = (try? FileManager.default.attributesOfItem(atPath: imageFile.path)[.size] as? Int) ?? 0
        let sha = try? SHA256Digest.hex(file: imageFile)
        return try register(metadata: metadata, size: size, sha: sha) { id in try blobs.put(file: imageFile, job: id, name: Self.imageName) }
    }

    /// Registers a style from bytes in memory.
    public func register(bytes: [UInt8], metadata: StyleMetadata) throws -> StyleRecord {
        try register(metadata: metadata, size: bytes.count, sha: SHA256Digest.hex(bytes)) { id in
            try blobs.put(bytes, job: id, name: Self.imageName)
        }
    }

    private func register(metadata: StyleMetadata, size: Int, sha: String?, store: (String) throws -> Void) throws -> StyleRecord {
        let (count, used) = try database.run { c -> (Int, Int) in
            let row = try c.query("SELECT count(*) AS n, coalesce(sum(image_size), 0) AS bytes FROM stylist_styles").first
            return (try row?.int("n") ?? 0, try row?.int("bytes") ?? 0)
        }
        guard count < maxCount else {
            throw StyleLibraryFull(description: "the style library holds its maximum of \(maxCount) styles (max_styles)")
        }
        guard used + size <= maxBytes else {
            throw StyleLibraryFull(description: "the style library's images would exceed \(maxBytes) bytes (max_style_bytes)")
        }
        let id = randomToken(bytes: 16)
        let record = StyleRecord(id: id, metadata: metadata, createdAt: JobsJSON.now(), imageBlob: Self.imageName,
                                 imageSize: size, imageSHA256: sha)
        do {
            try store(id)
            try database.run { c in
                try c.query("INSERT INTO stylist_styles (id, created_at, image_size, record) VALUES ($1, $2, $3, $4)",
                            [.text(id), .date(record.createdAt), .int(size), try jsonText(record)])
            }
        } catch {
            try? blobs.deleteAll(job: id)
            throw error
        }
        return record
    }

    /// Every style, oldest first.
    public func list() throws -> [StyleRecord] {
        try database.run { c in
            try c.query("SELECT record FROM stylist_styles ORDER BY created_at, id").map { try $0.json(StyleRecord.self, "record") }
        }
    }

    /// How many styles are registered.
    public func count() throws -> Int {
        try database.run { c in try c.query("SELECT count(*) AS n FROM stylist_styles").first?.int("n") ?? 0 }
    }

    /// One style, or nil.
    public func get(_ id: String) throws -> StyleRecord? {
        guard Names.isValidID(id) else { return nil }
        return try database.run { c in
            try c.query("SELECT record FROM stylist_styles WHERE id = $1", [.text(id)]).first.map { try $0.json(StyleRecord.self, "record") }
        }
    }

    /// The style's image as a local file (fetched into the cache when needed).
    public func imageURL(_ id: String) throws -> URL? {
        guard try get(id) != nil else { return nil }
        return blobs.path(job: id, name: Self.imageName)
    }

    /// The style's image bytes, or nil.
    public func imageBytes(_ id: String) throws -> [UInt8]? {
        guard try get(id) != nil else { return nil }
        return try blobs.get(job: id, name: Self.imageName)
    }

    /// Deletes a style with its image and derived data.
    @discardableResult
    public func delete(_ id: String) throws -> Bool {
        guard Names.isValidID(id) else { return false }
        let removed = try database.run { c in
            !(try c.query("DELETE FROM stylist_styles WHERE id = $1 RETURNING id", [.text(id)])).isEmpty
        }
        if removed { try blobs.deleteAll(job: id) }
        return removed
    }

    /// Stores derived data under `key` (a blob) and names it in the style's record.
    @discardableResult
    public func putDerived(_ styleID: String, key: String, bytes: [UInt8]) throws -> Bool {
        guard try get(styleID) != nil else { return false }
        let blob = StyleLibrary.derivedBlobName(key)
        try blobs.put(bytes, job: styleID, name: blob)
        return try database.run { c in
            try c.transaction { c in
                guard let row = try c.query("SELECT record FROM stylist_styles WHERE id = $1 FOR UPDATE", [.text(styleID)]).first
                else { return false }
                var record = try row.json(StyleRecord.self, "record")
                if record.derived[key] != blob {
                    record.derived[key] = blob
                    try c.query("UPDATE stylist_styles SET record = $2 WHERE id = $1", [.text(styleID), try jsonText(record)])
                }
                return true
            }
        }
    }

    /// Derived data stored under `key`, or nil.
    public func derived(_ styleID: String, key: String) -> [UInt8]? {
        guard let blob = (try? get(styleID))??.derived[key] else { return nil }
        return try? blobs.get(job: styleID, name: blob)
    }

    /// Drops every derived entry of every style.
    public func removeAllDerived() throws {
        for var record in try list() where !record.derived.isEmpty {
            let names = Array(record.derived.values)
            record.derived = [:]
            try database.run { c in
                try c.query("UPDATE stylist_styles SET record = $2 WHERE id = $1", [.text(record.id), try jsonText(record)])
            }
            for name in names { try? blobs.delete(job: record.id, name: name) }
        }
    }
}
