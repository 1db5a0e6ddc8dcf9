import Foundation
import XCTest
@testable import Postgres

final class TimestampTests: XCTestCase {
    func testParsesEveryISOFormThePostgreSQLTextOutputUses() {
        XCTAssertEqual(PostgresTimestamp.parse("2026-01-02 03:04:05+01"), Date(timeIntervalSince1970: 1_767_319_445))
        XCTAssertEqual(PostgresTimestamp.parse("2026-01-02 02:04:05"), Date(timeIntervalSince1970: 1_767_319_445))
        XCTAssertEqual(PostgresTimestamp.parse("2026-01-02 07:34:05+05:30"), Date(timeIntervalSince1970: 1_767_319_445))
        XCTAssertEqual(PostgresTimestamp.parse("2026-01-01 23:04:05-03"), Date(timeIntervalSince1970: 1_767_319_445))
        XCTAssertEqual(PostgresTimestamp.parse("2026-01-02"), Date(timeIntervalSince1970: 1_767_312_000))
        XCTAssertEqual(PostgresTimestamp.parse("1969-12-31 23:59:59.5+00")!.timeIntervalSince1970, -0.5, accuracy: 1e-9)
        XCTAssertEqual(PostgresTimestamp.parse("infinity"), .distantFuture)
        XCTAssertNil(PostgresTimestamp.parse("2026-13-01"))
        XCTAssertNil(PostgresTimestamp.parse("01/02/2026"))
        XCTAssertNil(PostgresTimestamp.parse("2026-01-02 03:04:05+01 extra"))
    }

    func testFormatsInUTCWithMicrosecondsAndReadsItsOwnOutput() {
        XCTAssertEqual(PostgresTimestamp.format(Date(timeIntervalSince1970: 1_767_319_445.25)), "2026-01-02 02:04:05.250000+00")
        XCTAssertEqual(PostgresTimestamp.format(Date(timeIntervalSince1970: -0.5)), "1969-12-31 23:59:59.500000+00")
        for seconds in [0.0, 951_782_400, 4_102_444_800.000001, -2_208_988_800] {
            let date = Date(timeIntervalSince1970: seconds)
            XCTAssertEqual(PostgresTimestamp.parse(PostgresTimestamp.format(date))!.timeIntervalSince1970,
                           seconds, accuracy: 1e-6)
        }
    }
}
