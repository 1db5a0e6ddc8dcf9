import Foundation
import Jobs
import Logging
import Postgres

/// One replica's connection to the shared database: the pool its stores share, the schema
/// applied at open. `run` turns a lost or unreachable server into `JobStoreUnavailable`, which
/// the service answers with 503 and `Retry-After`.
public final class JobDatabase: @unchecked Sendable {
    let pool: PostgresPool
    let url: String
    let logger: Logger

    /// Connects a pool of `poolSize` and creates or migrates the schema, waiting up to
    /// `startTimeout` seconds for the server (a replica may start before its database).
    public init(url: String, poolSize: Int, startTimeout: Double = 30, logger: Logger) throws {
        self.url = url
        self.logger = logger
        pool = try PostgresPool(url: url, configuration: .init(size: max(2, poolSize), acquireTimeout: 5), logger: logger)
        try migrate(timeout: startTimeout)
    }

    /// True when the last contact with the server worked.
    public var isAvailable: Bool { pool.isAvailable }

    /// Closes the pool's connections.
    public func close() { pool.shutdown() }

    /// Runs `body` on a pooled connection.
    func run<T>(_ body: (PostgresConnection) throws -> T) throws -> T {
        do {
            return try pool.withConnection(body)
        } catch let e as PostgresError where e.kind == .connection || e.kind == .poolTimeout || e.connectionBroken {
            throw JobStoreUnavailable(reason: e.description)
        }
    }

    private func migrate(timeout: Double) throws {
        let deadline = Date().addingTimeInterval(timeout)
        var backoff = Backoff(minimum: 0.2, maximum: 2)
        while true {
            do {
                _ = try run { try PostgresMigrator.migrate($0, migrations: Schema.migrations, table: "stylist_schema_version") }
                return
            } catch let e as JobStoreUnavailable where Date() < deadline {
                logger.warning("database not reachable yet", metadata: ["error": "\(e.reason)"])
                Thread.sleep(forTimeInterval: backoff.failed())
            }
        }
    }
}

extension PostgresRow {
    /// The JSON text in `column` decoded as `T`.
    func json<T: Decodable>(_ type: T.Type, _ column: String) throws -> T {
        guard let text = try string(column) else { throw PostgresError(kind: .decoding, message: "\(column) is NULL") }
        return try JobsJSON.decode(type, from: Array(text.utf8))
    }
}

/// `value` as JSON text for a `text` column.
func jsonText<T: Encodable>(_ value: T) throws -> PostgresValue {
    .text(String(decoding: try JobsJSON.encode(value), as: UTF8.self))
}
