import Foundation
import XCTest
import Postgres
import TestSupport

/// Stops and starts the test server itself (STYLIST_TEST_PG_CTL_CMD from .ci/postgres): the pool and
/// the listener have to notice the outage and recover on their own.
final class ServerRestartTests: XCTestCase {
    private func pgCtl(_ arguments: String...) throws {
        guard let command = ProcessInfo.processInfo.environment["STYLIST_TEST_PG_CTL_CMD"], !command.isEmpty else {
            throw XCTSkip("STYLIST_TEST_PG_CTL_CMD is not set (source .ci/postgres)")
        }
        // posix_spawn, not Foundation's Process: `pg_ctl start` leaves a daemon behind, and
        // Process can miss its own child's exit then.
        XCTAssertEqual(try Spawn.run(command, arguments), 0, "pg_ctl \(arguments.joined(separator: " "))")
    }

    func testPoolAndListenerRecoverWhenTheServerRestarts() throws {
        let url = try TestDatabase.url()
        _ = try pgCtl("status")
        let pool = try PostgresPool(url: url, configuration: .init(size: 2, backoff: Backoff(minimum: 0.05, maximum: 0.5)))
        defer { pool.shutdown() }
        let reconnects = Counter()
        let listener = try PostgresListener(url: url, channels: ["restart_test"], backoff: Backoff(minimum: 0.05, maximum: 0.5),
                                            onReconnect: reconnects.increment) { _ in }
        listener.start()
        defer { listener.stop() }
        XCTAssertTrue(listener.waitUntilListening(timeout: 15))
        try pool.withConnection { _ = try $0.query("SELECT 1") }
        XCTAssertTrue(pool.isAvailable)

        try pgCtl("stop", "-m", "fast")
        var restarted = false
        defer { if !restarted { try? pgCtl("start") } }
        XCTAssertThrowsError(try pool.withConnection(timeout: 1) { try $0.query("SELECT 1") }) { error in
            XCTAssertEqual((error as? PostgresError)?.connectionBroken, true, "\(error)")
        }
        XCTAssertFalse(pool.isAvailable)
        try waitUntil("the listener to notice") { !listener.isListening }

        try pgCtl("start")
        restarted = true
        // Nothing uses the pool now: its own reconnect attempts have to make it available again.
        try waitUntil("the pool to reconnect") { pool.isAvailable }
        try waitUntil("the listener to reconnect") { reconnects.value == 1 && listener.isListening }
        XCTAssertEqual(try pool.withConnection { try $0.query("SELECT 3")[0].int(0) }, 3)
    }
}

/// A thread-safe count for callbacks.
final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    func increment() { lock.withLock { count += 1 } }
    var value: Int { lock.withLock { count } }
}
