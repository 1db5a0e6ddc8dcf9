import Foundation

/// What the service needs from a style library; `StyleLibrary` (the local data directory) and
/// the PostgreSQL backend both provide it. Methods that read may throw `JobStoreUnavailable`
/// when a database cannot be reached.
public protocol StyleStore: AnyObject, Sendable {
    /// Registers a style from a file, which is moved into the library. Throws `StyleLibraryFull`.
    func register(imageFile: URL, metadata: StyleMetadata) throws -> StyleRecord
    /// Registers a style from bytes in memory. Throws `StyleLibraryFull`.
    func register(bytes: [UInt8], metadata: StyleMetadata) throws -> StyleRecord
    /// Every style, oldest first.
    func list() throws -> [StyleRecord]
    /// How many styles are registered.
    func count() throws -> Int
    /// One style, or nil.
    func get(_ id: String) throws -> StyleRecord?
    /// A local file holding a style's image, or nil.
    func imageURL(_ id: String) throws -> URL?
    /// A style's image bytes, or nil.
    func imageBytes(_ id: String) throws -> [UInt8]?
    /// Deletes a style and its files; false when it did not exist.
    @discardableResult func delete(_ id: String) throws -> Bool
    /// Stores derived data (e.g. a cached style code) under `key`; false when the style is gone.
    @discardableResult func putDerived(_ styleID: String, key: String, bytes: [UInt8]) throws -> Bool
    /// Derived data stored under `key`, or nil (also when it cannot be read).
    func derived(_ styleID: String, key: String) -> [UInt8]?
    /// Drops every derived entry of every style (e.g. after the model files changed).
    func removeAllDerived() throws
}

extension StyleLibrary: StyleStore {
    /// How many styles are registered.
    public func count() -> Int { list().count }
}
