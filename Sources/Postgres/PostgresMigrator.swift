import Foundation

/// One schema step: `version` is applied once, in ascending order, by running `sql`.
public struct PostgresMigration: Sendable {
    public let version: Int
    public let sql: String

    public init(version: Int, sql: String) {
        self.version = version
        self.sql = sql
    }
}

/// Brings a database's schema up to date: applies the migrations a version table lacks, one
/// transaction each, under an advisory lock so concurrent starters apply each exactly once.
public enum PostgresMigrator {
    /// The advisory lock key taken while migrating, unless the caller passes its own.
    public static let defaultLockKey: Int64 = 0x5354_594C_4953_5401 // "STYLIST" + 1

    /// Applies the missing migrations and returns the versions it applied (empty when up to date).
    /// `table` records applied versions; a database with versions unknown here is left as is.
    @discardableResult
    public static func migrate(_ connection: PostgresConnection, migrations: [PostgresMigration],
                               table: String = "schema_version", lockKey: Int64 = defaultLockKey) throws -> [Int] {
        let versions = migrations.map(\.version)
        guard Set(versions).count == versions.count else {
            throw PostgresError(kind: .usage, message: "migration versions must be unique")
        }
        let quotedTable = try connection.quoteIdentifier(table)
        return try connection.withAdvisoryLock(lockKey) {
            try connection.execute("""
                CREATE TABLE IF NOT EXISTS \(quotedTable) (
                    version integer PRIMARY KEY,
                    applied_at timestamptz NOT NULL DEFAULT now()
                )
                """)
            let rows = try connection.query("SELECT version FROM \(quotedTable)")
            let applied = Set(try rows.map { try $0.int(0) ?? -1 })
            var done: [Int] = []
            for migration in migrations.sorted(by: { $0.version < $1.version }) where !applied.contains(migration.version) {
                try connection.transaction { connection in
                    try connection.execute(migration.sql)
                    try connection.query("INSERT INTO \(quotedTable) (version) VALUES ($1)", [.int(migration.version)])
                }
                done.append(migration.version)
            }
            return done
        }
    }

    /// The highest version recorded in `table`, or nil when the table is absent or empty.
    public static func currentVersion(_ connection: PostgresConnection, table: String = "schema_version") throws -> Int? {
        let exists = try connection.query("SELECT to_regclass($1) IS NOT NULL", [.text(table)])[0].bool(0) ?? false
        guard exists else { return nil }
        return try connection.query("SELECT max(version) FROM \(try connection.quoteIdentifier(table))")[0].int(0)
    }
}
