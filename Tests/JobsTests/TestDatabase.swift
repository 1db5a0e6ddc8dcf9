import Foundation
import XCTest
import Postgres

/// A database of its own for one test on the server from STYLIST_TEST_DATABASE_URL (see
/// .ci/postgres), dropped afterwards. Without the variable the test skips, except under CI or
/// STYLIST_REQUIRE_DATABASE=1, where a missing database is a failure.
final class ScratchDatabase {
    struct Missing: Error, CustomStringConvertible {
        var description: String { "STYLIST_TEST_DATABASE_URL is not set, and CI / STYLIST_REQUIRE_DATABASE=1 requires it (source .ci/postgres)" }
    }

    let name = "stylist_jobs_\(UInt32.random(in: 0...UInt32.max))"
    let url: String
    private let baseURL: String

    init() throws {
        let environment = ProcessInfo.processInfo.environment
        guard let base = environment["STYLIST_TEST_DATABASE_URL"], !base.isEmpty else {
            if environment["CI"] != nil || environment["STYLIST_REQUIRE_DATABASE"] == "1" { throw Missing() }
            throw XCTSkip("STYLIST_TEST_DATABASE_URL is not set (source .ci/postgres)")
        }
        baseURL = base
        var parts = try XCTUnwrap(URLComponents(string: base))
        parts.path = "/" + name
        url = try XCTUnwrap(parts.string)
        try PostgresConnection(url: base).execute("CREATE DATABASE \(name)")
    }

    func drop() {
        guard let admin = try? PostgresConnection(url: baseURL) else { return }
        _ = try? admin.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", [.text(name)])
        try? admin.execute("DROP DATABASE IF EXISTS \(name)")
    }
}
