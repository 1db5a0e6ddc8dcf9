import Foundation
import XCTest
import Postgres
import TestSupport

/// Stops and starts a PostgreSQL cluster of this test's own (so tests running in parallel on the
/// common one are undisturbed): the pool and the listener have to notice the outage and recover
/// on their own.
final class ServerRestartTests: XCTestCase {
    private var cluster: PrivatePostgres?

    override func setUpWithError() throws {
        guard let started = try PrivatePostgres.start() else { throw TestDatabaseURL.unavailable("PostgreSQL is not installed") }
        cluster = started
    }

    override func tearDown() { cluster?.stop() }

    private func pgCtl(_ arguments: String...) throws {
        guard let cluster else { throw XCTSkip("no cluster") }
        try cluster.control(arguments)
    }

    func testPoolAndListenerRecoverWhenTheServerRestarts() throws {
        let url = try XCTUnwrap(cluster).url
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
