import Foundation
import XCTest
import Postgres

final class PoolTests: XCTestCase {
    func testPoolReplacesConnectionsWhoseBackendsWereTerminated() throws {
        let name = TestDatabase.uniqueName("pool")
        let pool = try PostgresPool(url: TestDatabase.url(applicationName: name), configuration: .init(size: 3))
        defer { pool.shutdown() }
        // Open all three connections at once, so all three are idle in the pool afterwards.
        // Threads of their own: a concurrentPerform on a 2-core machine would never run the third.
        let barrier = Barrier(parties: 3)
        let done = DispatchGroup()
        for _ in 0..<3 {
            done.enter()
            Thread {
                try? pool.withConnection { _ in barrier.arriveAndWait() }
                done.leave()
            }.start()
        }
        done.wait()
        XCTAssertEqual(pool.openConnections, 3)
        let admin = try PostgresConnection(url: TestDatabase.url())
        let pidsBefore = try Set(admin.query("SELECT pid FROM pg_stat_activity WHERE application_name = $1",
                                             [.text(name)]).map { try $0.int64(0).map(Int32.init) })
        XCTAssertEqual(pidsBefore.count, 3)
        try TestDatabase.terminateSessions(applicationName: name, using: admin)

        // Every lease after the kill gets a working connection: dead idle ones are noticed and replaced.
        for _ in 0..<5 {
            XCTAssertEqual(try pool.withConnection { try $0.query("SELECT 1")[0].int(0) }, 1)
        }
        let pidAfter = try pool.withConnection { $0.backendPID }
        XCTAssertFalse(pidsBefore.contains(pidAfter))
        XCTAssertTrue(pool.isAvailable)
        XCTAssertLessThanOrEqual(pool.openConnections, 3)
    }

    func testConnectionBrokenDuringUseIsDiscardedAndTheErrorReachesTheCaller() throws {
        let name = TestDatabase.uniqueName("pooluse")
        let pool = try PostgresPool(url: TestDatabase.url(applicationName: name), configuration: .init(size: 1))
        defer { pool.shutdown() }
        let admin = try PostgresConnection(url: TestDatabase.url())
        XCTAssertThrowsError(try pool.withConnection { connection in
            try TestDatabase.terminateSessions(applicationName: name, using: admin)
            try connection.query("SELECT 1")
        }) { XCTAssertEqual(($0 as? PostgresError)?.connectionBroken, true, "\($0)") }
        XCTAssertEqual(try pool.withConnection { try $0.query("SELECT 2")[0].int(0) }, 2)
    }

    func testBusyPoolTimesOut() throws {
        let pool = try PostgresPool(url: TestDatabase.url(), configuration: .init(size: 1))
        defer { pool.shutdown() }
        let held = DispatchSemaphore(value: 0)
        let release = DispatchSemaphore(value: 0)
        DispatchQueue.global().async {
            try? pool.withConnection { _ in held.signal(); release.wait() }
        }
        held.wait()
        XCTAssertThrowsError(try pool.withConnection(timeout: 0.2) { _ in }) { error in
            XCTAssertEqual((error as? PostgresError)?.kind, .poolTimeout)
            XCTAssertEqual((error as? PostgresError)?.connectionBroken, false)
        }
        release.signal()
        XCTAssertNoThrow(try pool.withConnection(timeout: 10) { _ in })
    }

    func testTransactionLeftOpenIsRolledBackBeforeReuse() throws {
        let schema = try TestSchema()
        defer { schema.drop() }
        let pool = try PostgresPool(url: schema.url, configuration: .init(size: 1))
        defer { pool.shutdown() }
        let table = "\(schema.name).leftover"
        try pool.withConnection { try $0.execute("CREATE TABLE \(table) (n int)") }
        try pool.withConnection { connection in
            try connection.execute("BEGIN")
            try connection.query("INSERT INTO \(table) VALUES (1)")
        }
        try pool.withConnection { connection in
            XCTAssertFalse(connection.isInTransaction)
            XCTAssertEqual(try connection.query("SELECT count(*) FROM \(table)")[0].int(0), 0)
        }
    }

    func testUnreachableServerMakesThePoolUnavailableWithTheReason() throws {
        _ = try TestDatabase.url() // only meaningful where the other pool tests run
        let pool = try PostgresPool(url: "postgres://postgres:hunter2x@127.0.0.1:1/x?connect_timeout=2",
                                    configuration: .init(size: 2, backoff: Backoff(minimum: 0.05, maximum: 0.2)))
        defer { pool.shutdown() }
        XCTAssertThrowsError(try pool.withConnection(timeout: 0.5) { _ in }) { error in
            XCTAssertEqual((error as? PostgresError)?.connectionBroken, true)
            XCTAssertFalse("\(error)".contains("hunter2x"))
        }
        XCTAssertFalse(pool.isAvailable)
        XCTAssertEqual(pool.lastError?.kind, .connection)
    }

    func testBackoffDoublesFromTheMinimumUpToTheCap() {
        var backoff = Backoff(minimum: 0.1, maximum: 0.5)
        XCTAssertEqual(backoff.current, 0)
        XCTAssertEqual([backoff.failed(), backoff.failed(), backoff.failed(), backoff.failed()], [0.1, 0.2, 0.4, 0.5])
        backoff.succeeded()
        XCTAssertEqual(backoff.failed(), 0.1)
    }
}

/// Holds each caller until `parties` callers have arrived (or 15 s pass, so a failure cannot hang the suite).
final class Barrier: @unchecked Sendable {
    private let condition = NSCondition()
    private let parties: Int
    private var arrived = 0

    init(parties: Int) { self.parties = parties }

    func arriveAndWait() {
        condition.lock()
        arrived += 1
        condition.broadcast()
        let deadline = Date(timeIntervalSinceNow: 15)
        while arrived < parties, condition.wait(until: deadline) {}
        condition.unlock()
    }
}
