import Foundation
import XCTest
import Postgres
import TestSupport

/// The test server (`TestDatabaseURL`) and helpers around it.
enum TestDatabase {
    static func url() throws -> String { try TestDatabaseURL.url() }

    /// The test URL with `application_name` set, so a test can find its own sessions in pg_stat_activity.
    static func url(applicationName: String) throws -> String {
        let base = try url()
        return base + (base.contains("?") ? "&" : "?") + "application_name=\(applicationName)"
    }

    static func uniqueName(_ prefix: String) -> String {
        "\(prefix)_\(UInt32.random(in: 0...UInt32.max))"
    }

    /// Terminates every session labelled `applicationName` and waits until those processes are gone
    /// (the code under test may already have opened new sessions under the same name).
    static func terminateSessions(applicationName: String, using admin: PostgresConnection) throws {
        // The call sits in the select list: in WHERE the planner may run it before the name filter.
        let pids = try admin.query("""
            SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1
            """, [.text(applicationName)]).map { try $0.int64(0) ?? 0 }
        XCTAssertFalse(pids.isEmpty, "no session named \(applicationName) to terminate")
        let list = pids.map(String.init).joined(separator: ",")
        try waitUntil("sessions of \(applicationName) to end") {
            try admin.query("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1::int[])",
                            [.text("{\(list)}")])[0].int(0) == 0
        }
    }
}

/// A schema of its own for one test, dropped afterwards; connections opened through it use it.
final class TestSchema {
    let name = TestDatabase.uniqueName("pgtest")
    let url: String
    private let admin: PostgresConnection

    init() throws {
        url = try TestDatabase.url()
        admin = try PostgresConnection(url: url)
        try admin.execute("CREATE SCHEMA \(name)")
    }

    func connect() throws -> PostgresConnection {
        let connection = try PostgresConnection(url: url)
        try connection.execute("SET search_path TO \(name)")
        return connection
    }

    func drop() { try? admin.execute("DROP SCHEMA \(name) CASCADE") }
}

/// Polls `condition` every 20 ms until it holds, failing after 15 s (a hang guard, not a timing check).
func waitUntil(_ what: String, file: StaticString = #filePath, line: UInt = #line,
               _ condition: () throws -> Bool) throws {
    let deadline = Date(timeIntervalSinceNow: 15)
    while Date() < deadline {
        if try condition() { return }
        usleep(20_000)
    }
    XCTFail("timed out waiting for \(what)", file: file, line: line)
    throw PostgresError(kind: .usage, message: "timed out waiting for \(what)")
}
