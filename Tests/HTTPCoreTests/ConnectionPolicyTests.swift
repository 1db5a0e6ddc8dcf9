import HTTPCore
import XCTest

/// The connection admission policy and transfer deadlines as pure values: fed events and a clock,
/// no sockets and no sleeping.
final class ConnectionPolicyTests: XCTestCase {
    let second: UInt64 = 1_000_000_000

    func testAtTheLimitTheLongestIdleConnectionMakesRoom() {
        var a = ConnectionAdmission<Int>(maxConnections: 3, maxPerAddress: 10)
        XCTAssertEqual(a.admit(1, address: "a", now: 0), .init(evict: [], refuse: false))
        XCTAssertEqual(a.admit(2, address: "b", now: 1), .init(evict: [], refuse: false))
        XCTAssertEqual(a.admit(3, address: "c", now: 2), .init(evict: [], refuse: false))
        a.busy(1)                                   // being answered: never evicted
        XCTAssertEqual(a.admit(4, address: "d", now: 3), .init(evict: [2], refuse: false))
        a.idle(1, now: 10)                          // idle again, but only since 10
        XCTAssertEqual(a.admit(5, address: "e", now: 11), .init(evict: [3], refuse: false))
        XCTAssertEqual(a.count, 3)
    }

    func testRefusedOnlyWhenEveryConnectionIsBusy() {
        var a = ConnectionAdmission<Int>(maxConnections: 2, maxPerAddress: 10)
        _ = a.admit(1, address: "a", now: 0)
        _ = a.admit(2, address: "b", now: 0)
        a.busy(1)
        a.busy(2)
        XCTAssertEqual(a.admit(3, address: "c", now: 1), .init(evict: [], refuse: true))
        XCTAssertEqual(a.count, 2)
        a.closed(2)
        XCTAssertEqual(a.admit(4, address: "c", now: 2), .init(evict: [], refuse: false))
    }

    func testOneAddressCannotHoldMoreThanItsShare() {
        var a = ConnectionAdmission<Int>(maxConnections: 100, maxPerAddress: 2)
        _ = a.admit(1, address: "attacker", now: 0)
        _ = a.admit(2, address: "attacker", now: 1)
        _ = a.admit(3, address: "other", now: 2)
        // The attacker's third connection evicts its own oldest, never the other client's.
        XCTAssertEqual(a.admit(4, address: "attacker", now: 3), .init(evict: [1], refuse: false))
        XCTAssertEqual(a.admit(5, address: "other", now: 4), .init(evict: [], refuse: false))
        a.busy(2)
        a.busy(4)
        XCTAssertEqual(a.admit(6, address: "attacker", now: 5), .init(evict: [], refuse: true))
        a.closed(1)   // already evicted: ignored
        XCTAssertEqual(a.count, 4)
    }

    func testATrickleIsTooSlowAndSilenceStalls() {
        var d = TransferDeadline(stallSeconds: 10, minBytesPerSecond: 1000, now: 0)
        // 100 bytes a second: fine during the grace, too slow after it.
        for t in 1...10 {
            d.progressed(100, now: UInt64(t) * second)
            if case .checkAgain = d.verdict(now: UInt64(t) * second) {} else { XCTFail("given up at \(t) s") }
        }
        for t in 11...20 { d.progressed(100, now: UInt64(t) * second) }
        XCTAssertEqual(d.verdict(now: 20 * second), .tooSlow)
        XCTAssertEqual(d.verdict(now: 20 * second, checkRate: false), .checkAgain(after: 1))
        // Ten silent seconds stall, whatever came before.
        var fast = TransferDeadline(stallSeconds: 10, minBytesPerSecond: 1000, now: 0)
        fast.progressed(1_000_000, now: second)
        XCTAssertEqual(fast.verdict(now: 11 * second), .stalled)
        XCTAssertEqual(fast.verdict(now: 10 * second), .checkAgain(after: 1))
    }

    func testProgressNeverPushesTheRateDeadlineBack() {
        // At exactly the minimum rate after the grace the transfer passes; a byte less fails.
        var d = TransferDeadline(stallSeconds: 5, minBytesPerSecond: 100, now: 0)
        d.progressed(500, now: 9 * second)
        XCTAssertEqual(d.verdict(now: 10 * second), .checkAgain(after: 1))
        var e = TransferDeadline(stallSeconds: 5, minBytesPerSecond: 100, now: 0)
        e.progressed(499, now: 9 * second)
        XCTAssertEqual(e.verdict(now: 10 * second), .tooSlow)
    }
}
