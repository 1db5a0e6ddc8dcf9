import Foundation
import XCTest
import Postgres

final class AdvisoryLockTests: XCTestCase {
    func testOnlyOneSessionHoldsAnAdvisoryLock() throws {
        let key = Int64.random(in: Int64.min...Int64.max)
        let first = try PostgresConnection(url: TestDatabase.url())
        let second = try PostgresConnection(url: TestDatabase.url())
        XCTAssertTrue(try first.tryAdvisoryLock(key))
        XCTAssertFalse(try second.tryAdvisoryLock(key))
        XCTAssertFalse(try second.advisoryUnlock(key), "a session cannot release another's lock")
        XCTAssertTrue(try first.advisoryUnlock(key))
        XCTAssertTrue(try second.tryAdvisoryLock(key))
        XCTAssertFalse(try first.tryAdvisoryLock(key))
    }

    func testClosingTheHoldersConnectionReleasesTheLock() throws {
        let key = Int64.random(in: Int64.min...Int64.max)
        var holder: PostgresConnection? = try PostgresConnection(url: TestDatabase.url())
        XCTAssertTrue(try holder!.tryAdvisoryLock(key))
        let other = try PostgresConnection(url: TestDatabase.url())
        XCTAssertFalse(try other.tryAdvisoryLock(key))
        holder = nil
        try waitUntil("the closed session's lock to go") { try other.tryAdvisoryLock(key) }
    }

    func testWithAdvisoryLockReleasesAfterAThrow() throws {
        let key = Int64.random(in: Int64.min...Int64.max)
        let connection = try PostgresConnection(url: TestDatabase.url())
        struct Failed: Error {}
        XCTAssertThrowsError(try connection.withAdvisoryLock(key) { throw Failed() })
        let other = try PostgresConnection(url: TestDatabase.url())
        XCTAssertTrue(try other.tryAdvisoryLock(key))
    }
}
