import Foundation

/// A PostgreSQL cluster of one test's own, started with `.ci/postgres` (so a test can restart
/// it without disturbing tests that share the common one). `nil` from `start()` means no
/// server binaries are installed; callers skip unless CI requires the database.
public final class PrivatePostgres {
    /// `postgres://postgres@127.0.0.1:PORT/stylist_test`.
    public let url: String
    private let pgCtl: String
    private let pgData: String
    private static var script: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent(".ci/postgres")
    }

    private init(url: String, pgCtl: String, pgData: String) {
        self.url = url
        self.pgCtl = pgCtl
        self.pgData = pgData
    }

    /// Starts a cluster; nil when PostgreSQL is not installed. Throws when it is and fails.
    public static func start() throws -> PrivatePostgres? {
        guard FileManager.default.fileExists(atPath: script.path),
              FileManager.default.fileExists(atPath: "/usr/lib/postgresql") else { return nil }
        // The script's output goes to a file, not a pipe: the server it starts inherits the
        // descriptors and keeps a pipe open for as long as it runs.
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("stylist-pg-\(UUID().uuidString).out")
        defer { try? FileManager.default.removeItem(at: output) }
        let status = try Spawn.run("/bin/bash", [script.path, "start"], outputFile: output.path)
        let text = (try? String(contentsOf: output, encoding: .utf8)) ?? ""
        guard status == 0 else { throw Failure("cluster did not start: \(text)") }
        var values: [String: String] = [:]
        for line in text.split(separator: "\n") where line.hasPrefix("export ") {
            let pair = line.dropFirst("export ".count).split(separator: "=", maxSplits: 1)
            guard pair.count == 2 else { continue }
            values[String(pair[0])] = String(pair[1]).trimmingCharacters(in: CharacterSet(charactersIn: "'"))
        }
        guard let url = values["STYLIST_TEST_DATABASE_URL"], let ctl = values["STYLIST_TEST_PG_CTL_CMD"],
              let data = values["STYLIST_TEST_PGDATA"] else { throw Failure("unexpected output: \(text)") }
        return PrivatePostgres(url: url, pgCtl: ctl, pgData: data)
    }

    /// Runs `pg_ctl` on the cluster (`restart -m fast`, `stop -m immediate`, `start`).
    public func control(_ arguments: String...) throws { try control(arguments) }

    /// Runs `pg_ctl` on the cluster with `arguments`.
    public func control(_ arguments: [String]) throws {
        guard try Spawn.run(pgCtl, arguments) == 0 else { throw Failure("pg_ctl \(arguments.joined(separator: " ")) failed") }
    }

    /// Stops the cluster and deletes its files.
    public func stop() {
        var environment = ProcessInfo.processInfo.environment
        environment["STYLIST_TEST_PGDATA"] = pgData
        _ = try? Spawn.run("/bin/bash", [Self.script.path, "stop"], environment: environment)
    }

    /// Why the cluster could not be used.
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
        init(_ description: String) { self.description = description }
    }
}
