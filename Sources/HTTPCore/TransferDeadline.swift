/// The deadline of one transfer (a request body being received, or a response being sent) as a
/// pure value fed the clock: it fails when nothing moved for `stallSeconds`, or when, after a
/// grace of `stallSeconds`, the average rate since the start falls below `minBytesPerSecond`.
/// Progress never pushes the deadline back, so a trickle cannot hold a connection for hours.
public struct TransferDeadline: Equatable {
    /// Why a transfer is given up.
    public enum Verdict: Equatable {
        /// Fine: check again after this many seconds.
        case checkAgain(after: Double)
        /// Nothing moved for the stall time.
        case stalled
        /// Moving, but slower than the minimum rate.
        case tooSlow
    }

    /// Longest silence, and the grace before the rate applies.
    public let stallSeconds: Double
    /// Slowest average rate after the grace.
    public let minBytesPerSecond: Int
    /// When the transfer started (monotonic nanoseconds).
    public private(set) var startedAt: UInt64
    /// When bytes last moved.
    public private(set) var lastProgressAt: UInt64
    /// Bytes moved so far.
    public private(set) var bytes = 0

    /// A transfer starting at `now` (nanoseconds of a monotonic clock).
    public init(stallSeconds: Double, minBytesPerSecond: Int, now: UInt64) {
        self.stallSeconds = stallSeconds
        self.minBytesPerSecond = minBytesPerSecond
        startedAt = now
        lastProgressAt = now
    }

    /// `n` bytes moved at `now`.
    public mutating func progressed(_ n: Int, now: UInt64) {
        guard n > 0 else { return }
        bytes += n
        lastProgressAt = now
    }

    /// The verdict at `now`; `checkRate` false skips the rate (event streams are slow by nature).
    public func verdict(now: UInt64, checkRate: Bool = true) -> Verdict {
        let silent = Double(now &- lastProgressAt) / 1e9
        let elapsed = Double(now &- startedAt) / 1e9
        if silent >= stallSeconds { return .stalled }
        if checkRate, elapsed > stallSeconds, Double(bytes) < (elapsed - stallSeconds) * Double(minBytesPerSecond) {
            return .tooSlow
        }
        return .checkAgain(after: min(1, stallSeconds - silent))
    }
}
