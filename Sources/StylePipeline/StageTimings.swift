import Foundation

/// Wall-clock time per stage of one job (read, decode, resize, style encode, network, encode...),
/// in the order the stages first ran; a stage that runs again (one decode per input) adds up.
public struct StageTimings: Sendable, Equatable {
    /// One named stage and its seconds.
    public struct Stage: Sendable, Equatable {
        public let name: String
        public var seconds: Double
    }

    /// The stages, in the order they first ran.
    public private(set) var stages: [Stage] = []

    public init() {}

    /// Adds `seconds` to the stage `name` (appended when new).
    public mutating func add(_ name: String, seconds: Double) {
        if let i = stages.firstIndex(where: { $0.name == name }) {
            stages[i].seconds += seconds
        } else {
            stages.append(Stage(name: name, seconds: seconds))
        }
    }

    /// Adds every stage of `other`, in its order.
    public mutating func add(_ other: StageTimings) {
        for s in other.stages { add(s.name, seconds: s.seconds) }
    }

    /// Runs `body` and adds its duration to the stage `name`, also when it throws.
    public mutating func time<T>(_ name: String, _ body: () throws -> T) rethrows -> T {
        let start = DispatchTime.now().uptimeNanoseconds
        defer { add(name, seconds: Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9) }
        return try body()
    }

    /// The seconds of one stage (0 when it did not run).
    public subscript(name: String) -> Double {
        stages.first { $0.name == name }?.seconds ?? 0
    }

    /// The sum of all stages.
    public var total: Double { stages.reduce(0) { $0 + $1.seconds } }

    /// `read 1.2 ms, decode 10.4 ms, ...`: one line for people.
    public var summary: String {
        stages.map { "\($0.name) \(String(format: "%.1f", $0.seconds * 1000)) ms" }.joined(separator: ", ")
    }

    /// `["read_ms": "1.2", ...]`: one key per stage, for a structured log line.
    public var milliseconds: [(key: String, value: String)] {
        stages.map { ("\($0.name)_ms", String(format: "%.1f", $0.seconds * 1000)) }
    }
}
