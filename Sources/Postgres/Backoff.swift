import Foundation

/// Exponential reconnect delays: nothing before the first attempt, then `minimum`, doubling up to `maximum`.
public struct Backoff: Sendable {
    /// Delay after the first failure.
    public var minimum: TimeInterval
    /// Cap on the delay between attempts.
    public var maximum: TimeInterval
    /// Delay before the next attempt (0 while nothing has failed).
    public private(set) var current: TimeInterval = 0

    public init(minimum: TimeInterval = 0.1, maximum: TimeInterval = 5) {
        self.minimum = minimum
        self.maximum = max(minimum, maximum)
    }

    /// Records a failure and returns how long to wait before trying again.
    public mutating func failed() -> TimeInterval {
        current = current == 0 ? minimum : min(current * 2, maximum)
        return current
    }

    /// Records a success: the next failure starts again from `minimum`.
    public mutating func succeeded() { current = 0 }
}
