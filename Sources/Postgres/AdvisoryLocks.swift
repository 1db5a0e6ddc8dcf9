/// Session-level advisory locks: held until unlocked or until the connection closes, so a holder
/// should keep a dedicated connection rather than return it to a pool while holding one.
extension PostgresConnection {
    /// Takes the lock `key` if free (true) or returns false at once when another session holds it.
    public func tryAdvisoryLock(_ key: Int64) throws -> Bool {
        try query("SELECT pg_try_advisory_lock($1)", [.int(key)])[0].bool(0) ?? false
    }

    /// Takes the lock `key`, waiting as long as another session holds it.
    public func advisoryLock(_ key: Int64) throws {
        try query("SELECT pg_advisory_lock($1)", [.int(key)])
    }

    /// Releases one hold of `key` by this session; false when it held none.
    @discardableResult
    public func advisoryUnlock(_ key: Int64) throws -> Bool {
        try query("SELECT pg_advisory_unlock($1)", [.int(key)])[0].bool(0) ?? false
    }

    /// Runs `body` while holding `key`; the lock is released afterwards, even when `body` throws.
    public func withAdvisoryLock<T>(_ key: Int64, _ body: () throws -> T) throws -> T {
        try advisoryLock(key)
        defer { if isConnected { _ = try? advisoryUnlock(key) } }
        return try body()
    }
}
