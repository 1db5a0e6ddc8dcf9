import Foundation
import XCTest
import Postgres
import TestSupport

/// A database of its own for one test on the test server (`TestDatabaseURL`), dropped afterwards.
final class ScratchDatabase {
    let name = "stylist_jobs_\(UInt32.random(in: 0...UInt32.max))"
    let url: String
    private let baseURL: String

    init() throws {
        let base = try TestDatabaseURL.url()
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
