import Foundation
import XCTest
import Postgres

final class ListenerTests: XCTestCase {
    /// Collects what a listener delivers, for assertions from the test thread.
    final class Inbox: @unchecked Sendable {
        private let condition = NSCondition()
        private var notes: [String] = []
        private var reconnects = 0

        func add(_ note: PostgresListener.Notification) {
            condition.withLock { notes.append("\(note.channel):\(note.payload)") }
        }
        func reconnected() { condition.withLock { reconnects += 1 } }
        var received: [String] { condition.withLock { notes } }
        var reconnectCount: Int { condition.withLock { reconnects } }
    }

    func testNotificationFromAnotherConnectionIsDelivered() throws {
        let inbox = Inbox()
        let channel = TestDatabase.uniqueName("jobs")
        let listener = try PostgresListener(url: TestDatabase.url(), channels: [channel, "Mixed Case"],
                                            onNotification: inbox.add)
        listener.start()
        defer { listener.stop() }
        XCTAssertTrue(listener.waitUntilListening(timeout: 15))

        let sender = try PostgresConnection(url: TestDatabase.url())
        try sender.notify(channel: channel, payload: "job-1 ✓")
        try sender.transaction { try $0.notify(channel: "Mixed Case", payload: "after commit") }
        try sender.notify(channel: "not-listened", payload: "ignored")
        try waitUntil("two notifications") { inbox.received.count >= 2 }
        XCTAssertEqual(inbox.received, ["\(channel):job-1 ✓", "Mixed Case:after commit"])
        XCTAssertEqual(inbox.reconnectCount, 0)
    }

    func testListenerReconnectsAfterItsBackendIsTerminatedAndSaysSo() throws {
        let inbox = Inbox()
        let channel = TestDatabase.uniqueName("jobs")
        let name = TestDatabase.uniqueName("listener")
        let listener = try PostgresListener(url: TestDatabase.url(applicationName: name), channels: [channel],
                                            backoff: Backoff(minimum: 0.05, maximum: 0.5),
                                            onReconnect: inbox.reconnected, onNotification: inbox.add)
        listener.start()
        defer { listener.stop() }
        XCTAssertTrue(listener.waitUntilListening(timeout: 15))
        let firstPID = listener.backendPID

        let admin = try PostgresConnection(url: TestDatabase.url())
        try TestDatabase.terminateSessions(applicationName: name, using: admin)
        try waitUntil("onReconnect") { inbox.reconnectCount == 1 }
        XCTAssertTrue(listener.isListening)
        XCTAssertNotEqual(listener.backendPID, firstPID)

        try admin.notify(channel: channel, payload: "after reconnect")
        try waitUntil("the notification on the new connection") { inbox.received == ["\(channel):after reconnect"] }
    }

    func testStopEndsTheThreadAndItsSession() throws {
        let name = TestDatabase.uniqueName("stopping")
        let listener = try PostgresListener(url: TestDatabase.url(applicationName: name), channels: ["c"]) { _ in }
        listener.start()
        XCTAssertTrue(listener.waitUntilListening(timeout: 15))
        listener.stop()
        XCTAssertFalse(listener.isListening)
        let admin = try PostgresConnection(url: TestDatabase.url())
        try waitUntil("the listener's session to close") {
            try admin.query("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", [.text(name)])[0].int(0) == 0
        }
    }
}
