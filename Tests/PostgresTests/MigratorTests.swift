import Foundation
import XCTest
import Postgres

final class MigratorTests: XCTestCase {
    var schema: TestSchema!

    override func setUpWithError() throws { schema = try TestSchema() }
    override func tearDown() { schema?.drop() }

    /// Each migration also appends to a log, so a step applied twice shows as a duplicate row.
    private func migrations() -> [PostgresMigration] {
        [
            PostgresMigration(version: 2, sql: """
                ALTER TABLE jobs ADD COLUMN attempt integer NOT NULL DEFAULT 0;
                INSERT INTO migration_log VALUES (2);
                """),
            PostgresMigration(version: 1, sql: """
                CREATE TABLE migration_log (version integer);
                CREATE TABLE jobs (id text PRIMARY KEY);
                SELECT pg_sleep(0.2);
                INSERT INTO migration_log VALUES (1);
                """),
        ]
    }

    func testConcurrentMigratorsApplyEachVersionOnceInOrder() throws {
        let lockKey = Int64.random(in: 1...Int64.max)
        let connections = try [schema.connect(), schema.connect()]
        let results = ResultBox()
        let done = DispatchGroup()
        let steps = migrations()
        for index in 0..<2 {
            done.enter()
            Thread {
                results.set(index, Result {
                    try PostgresMigrator.migrate(connections[index], migrations: steps, lockKey: lockKey)
                })
                done.leave()
            }.start()
        }
        done.wait()
        let applied = try results.values.map { try $0.get() }.sorted { $0.count < $1.count }
        XCTAssertEqual(applied, [[], [1, 2]], "one caller applies both, the other finds nothing to do")
        let check = try schema.connect()
        XCTAssertEqual(try check.query("SELECT version FROM migration_log ORDER BY version").map { try $0.int(0) }, [1, 2])
        XCTAssertEqual(try check.query("SELECT version FROM schema_version ORDER BY version").map { try $0.int(0) }, [1, 2])
        XCTAssertEqual(try PostgresMigrator.currentVersion(check), 2)
        XCTAssertEqual(try PostgresMigrator.migrate(check, migrations: migrations(), lockKey: lockKey), [])
        XCTAssertFalse(try check.tryAdvisoryLock(lockKey) == false, "the migrators released the lock")
    }

    func testAFailingMigrationIsRolledBackAndStopsTheRest() throws {
        let connection = try schema.connect()
        let steps = [
            PostgresMigration(version: 1, sql: "CREATE TABLE one (n int)"),
            PostgresMigration(version: 2, sql: "CREATE TABLE two (n int); SELECT no_such_function()"),
            PostgresMigration(version: 3, sql: "CREATE TABLE three (n int)"),
        ]
        XCTAssertThrowsError(try PostgresMigrator.migrate(connection, migrations: steps)) {
            XCTAssertEqual(($0 as? PostgresError)?.sqlState, "42883")
        }
        XCTAssertEqual(try PostgresMigrator.currentVersion(connection), 1)
        XCTAssertEqual(try connection.query("SELECT to_regclass('two') IS NULL")[0].bool(0), true)
        XCTAssertEqual(try connection.query("SELECT to_regclass('three') IS NULL")[0].bool(0), true)
        XCTAssertThrowsError(try PostgresMigrator.migrate(connection, migrations: steps + [steps[0]])) {
            XCTAssertEqual(($0 as? PostgresError)?.kind, .usage)
        }
    }

    func testCurrentVersionOfAnEmptyDatabaseIsNil() throws {
        XCTAssertNil(try PostgresMigrator.currentVersion(schema.connect()))
    }
}

/// Results written from concurrent closures, read after they finish.
final class ResultBox: @unchecked Sendable {
    private let lock = NSLock()
    private var results: [Int: Result<[Int], Error>] = [:]
    func set(_ index: Int, _ result: Result<[Int], Error>) { lock.withLock { results[index] = result } }
    var values: [Result<[Int], Error>] { lock.withLock { results.keys.sorted().map { results[$0]! } } }
}
