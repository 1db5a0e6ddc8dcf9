import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A registered style image and its cached derived data (encoder statistics).
public struct StyleRecord: Codable, Sendable, Equatable {
    /// Random, URL-safe identifier (128 bits, base64url).
    public var id: String
    /// An optional human-readable name.
    public var name: String?
    /// When it was registered.
    public var createdAt: Date
    /// Image width in pixels, if the app supplied it.
    public var width: Int?
    /// Image height in pixels, if the app supplied it.
    public var height: Int?
    /// The image's MIME type.
    public var contentType: String
    /// The image blob's file name inside the style's directory (`image`).
    public var imageBlob: String
    /// Size of the image in bytes.
    public var imageSize: Int?
    /// SHA-256 (hex) of the image, usable as an ETag or for de-duplication.
    public var imageSHA256: String?
    /// Derived data: app-chosen key (e.g. `microast@512`) -> blob file name.
    public var derived: [String: String]
    /// Who may see and use the style (the app's opaque client identity); nil: anyone.
    public var owner: String?

    /// A new style's record (no derived data yet).
    public init(id: String, metadata: StyleMetadata, createdAt: Date, imageBlob: String, imageSize: Int?, imageSHA256: String?) {
        self.id = id
        name = metadata.name
        self.createdAt = createdAt
        width = metadata.width
        height = metadata.height
        contentType = metadata.contentType
        self.imageBlob = imageBlob
        self.imageSize = imageSize
        self.imageSHA256 = imageSHA256
        derived = [:]
        owner = metadata.owner
    }
}

/// Metadata supplied when registering a style.
public struct StyleMetadata: Sendable {
    /// Optional name.
    public var name: String?
    /// MIME type of the image.
    public var contentType: String
    /// Width in pixels, if known.
    public var width: Int?
    /// Height in pixels, if known.
    public var height: Int?
    /// Who may see and use the style; nil: anyone.
    public var owner: String?
    /// Creates metadata.
    public init(name: String? = nil, contentType: String, width: Int? = nil, height: Int? = nil, owner: String? = nil) {
        self.owner = owner
        self.name = name
        self.contentType = contentType
        self.width = width
        self.height = height
    }
}

/// Registering a style would exceed the library's count or byte limit.
public struct StyleLibraryFull: Error, CustomStringConvertible, Sendable {
    /// The limit that was reached, in words (for the client).
    public let description: String
    /// The library is full; `description` says which limit.
    public init(description: String) { self.description = description }
}

/// Durable library of registered styles on the local data directory
/// (`DATA/styles/<id>/style.json`, `image`, `derived-<hash>`), written with the same
/// temp-file + fsync + rename discipline as jobs. Thread-safe.
public final class StyleLibrary: @unchecked Sendable {
    /// The directory holding one sub-directory per style.
    public let root: URL
    private let lock = NSLock()
    private var records: [String: StyleRecord] = [:]
    /// Most styles kept.
    public let maxCount: Int
    /// Most image bytes kept in all.
    public let maxBytes: Int
    /// Image bytes of `records` plus registrations under way (reserved before writing).
    private var usedBytes = 0
    private var pending = 0
    private static let recordName = "style.json"
    private static let imageName = "image"

    /// Opens (creating if needed) the library at `directory` (e.g. `DATA/styles`), loading
    /// every record and removing temp files and directories without a record.
    public init(directory: URL, maxCount: Int = .max, maxBytes: Int = .max) throws {
        root = directory
        self.maxCount = maxCount
        self.maxBytes = maxBytes
        try DurableFS.makeDirectory(directory)
        for name in DurableFS.listDirectory(directory) {
            let dir = directory.appendingPathComponent(name)
            guard Names.isValidID(name) else {
                if name.hasPrefix(DurableFS.tempPrefix) { try? DurableFS.removeTree(dir) }
                continue
            }
            for entry in DurableFS.listDirectory(dir) where entry.hasPrefix(DurableFS.tempPrefix) {
                try? DurableFS.removeFile(dir.appendingPathComponent(entry))
            }
            guard let bytes = try DurableFS.readFile(dir.appendingPathComponent(Self.recordName)) else {
                try? DurableFS.removeTree(dir)
                continue
            }
            if let record = try? JobsJSON.decode(StyleRecord.self, from: bytes), record.id == name {
                records[name] = record
                usedBytes += record.imageSize ?? 0
            }
        }
    }

    /// Registers a style from a file, which is moved (not copied) into the library.
    /// Throws `StyleLibraryFull` when the count or byte limit would be exceeded.
    public func register(imageFile: URL, metadata: StyleMetadata) throws -> StyleRecord {
        try register(metadata: metadata, size: DurableFS.fileSize(imageFile) ?? 0) { dir in
            try DurableFS.moveIn(imageFile, to: dir.appendingPathComponent(Self.imageName))
        }
    }

    /// Registers a style from bytes in memory. Throws `StyleLibraryFull` at the limits.
    public func register(bytes: [UInt8], metadata: StyleMetadata) throws -> StyleRecord {
        try register(metadata: metadata, size: bytes.count) { dir in
            try DurableFS.writeAtomically(bytes, to: dir.appendingPathComponent(Self.imageName))
        }
    }

    private func register(metadata: StyleMetadata, size: Int, writeImage: (URL) throws -> Void) throws -> StyleRecord {
        var id = randomToken(bytes: 16)
        lock.lock()
        // The room is reserved before the write, so concurrent registrations cannot overshoot.
        guard records.count + pending < maxCount else {
            lock.unlock()
            throw StyleLibraryFull(description: "the style library holds its maximum of \(maxCount) styles (max_styles)")
        }
        guard usedBytes + size <= maxBytes else {
            lock.unlock()
            throw StyleLibraryFull(description: "the style library's images would exceed \(maxBytes) bytes (max_style_bytes)")
        }
        pending += 1
        usedBytes += size
        while records[id] != nil { id = randomToken(bytes: 16) }
        lock.unlock()
        let dir = root.appendingPathComponent(id)
        do {
            try DurableFS.makeDirectory(dir)
            try writeImage(dir)
            let image = dir.appendingPathComponent(Self.imageName)
            let record = StyleRecord(id: id, metadata: metadata, createdAt: JobsJSON.now(), imageBlob: Self.imageName,
                                     imageSize: DurableFS.fileSize(image), imageSHA256: try? SHA256Digest.hex(file: image))
            try save(record)
            lock.lock()
            records[id] = record
            pending -= 1
            usedBytes += (record.imageSize ?? size) - size
            lock.unlock()
            return record
        } catch {
            lock.lock()
            pending -= 1
            usedBytes -= size
            lock.unlock()
            try? DurableFS.removeTree(dir)
            throw error
        }
    }

    private func save(_ record: StyleRecord) throws {
        try DurableFS.writeAtomically(try JobsJSON.encode(record),
                                      to: root.appendingPathComponent(record.id).appendingPathComponent(Self.recordName))
    }

    /// Every style, oldest first.
    public func list() -> [StyleRecord] {
        lock.lock()
        defer { lock.unlock() }
        return records.values.sorted { ($0.createdAt, $0.id) < ($1.createdAt, $1.id) }
    }

    /// One style, or nil.
    public func get(_ id: String) -> StyleRecord? {
        lock.lock()
        defer { lock.unlock() }
        return records[id]
    }

    /// The local file of a style's image, or nil.
    public func imageURL(_ id: String) -> URL? {
        guard let record = get(id) else { return nil }
        return root.appendingPathComponent(id).appendingPathComponent(record.imageBlob)
    }

    /// A style's image bytes, or nil.
    public func imageBytes(_ id: String) throws -> [UInt8]? {
        guard let url = imageURL(id) else { return nil }
        return try DurableFS.readFile(url)
    }

    /// Deletes a style and all its files; false when it did not exist.
    @discardableResult
    public func delete(_ id: String) throws -> Bool {
        lock.lock()
        let removed = records.removeValue(forKey: id)
        usedBytes -= removed?.imageSize ?? 0
        lock.unlock()
        guard removed != nil else { return false }
        let dir = root.appendingPathComponent(id)
        try DurableFS.removeFile(dir.appendingPathComponent(Self.recordName))
        try DurableFS.removeTree(dir)
        return true
    }

    /// Stores derived data (e.g. encoder statistics for a model and size) under `key`,
    /// replacing any previous value; returns false when the style does not exist.
    @discardableResult
    public func putDerived(_ styleID: String, key: String, bytes: [UInt8]) throws -> Bool {
        let blob = Self.derivedBlobName(key)
        lock.lock()
        defer { lock.unlock() }
        guard var record = records[styleID] else { return false }
        let dir = root.appendingPathComponent(styleID)
        try DurableFS.writeAtomically(bytes, to: dir.appendingPathComponent(blob))
        if record.derived[key] != blob {
            record.derived[key] = blob
            try save(record)
            records[styleID] = record
        }
        return true
    }

    /// The blob name of derived data stored under `key`.
    public static func derivedBlobName(_ key: String) -> String {
        "derived-" + String(SHA256Digest.hex(Array(key.utf8)).prefix(32))
    }

    /// Derived data stored under `key`, or nil.
    public func derived(_ styleID: String, key: String) -> [UInt8]? {
        guard let blob = get(styleID)?.derived[key] else { return nil }
        return try? DurableFS.readFile(root.appendingPathComponent(styleID).appendingPathComponent(blob))
    }

    /// Drops every derived entry of every style (e.g. after the model files changed).
    public func removeAllDerived() throws {
        lock.lock()
        defer { lock.unlock() }
        for (id, var record) in records where !record.derived.isEmpty {
            let dir = root.appendingPathComponent(id)
            let blobs = Array(record.derived.values)
            record.derived = [:]
            try save(record)
            records[id] = record
            for blob in blobs { try? DurableFS.removeFile(dir.appendingPathComponent(blob)) }
        }
    }
}
