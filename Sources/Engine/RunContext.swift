import Foundation

/// Thrown when a run is canceled between layers.
public struct RunCanceled: Error, CustomStringConvertible {
    public init() {}
    public var description: String { "canceled" }
}

/// One layer's timing, reported as a run goes.
public struct LayerTiming: Sendable {
    public let name: String
    public let seconds: Double
    public let flops: Double
    /// What ran, e.g. "conv3x3" (for aggregating by kind); empty for other ops.
    public let kind: String

    public init(name: String, seconds: Double, flops: Double, kind: String) {
        self.name = name; self.seconds = seconds; self.flops = flops; self.kind = kind
    }
}

/// Carries progress reporting, cancellation and per-layer timing through one inference run.
/// The engine checks `isCanceled` between layers, never inside a kernel.
public final class RunContext: @unchecked Sendable {
    /// Estimated total FLOPs of the run (for progress fractions).
    public var plannedFlops: Double = 0
    /// FLOPs done so far.
    public private(set) var doneFlops: Double = 0
    /// Called after each layer with the progress fraction in [0, 1].
    public var onProgress: ((Double) -> Void)?
    /// Polled between layers; returning true stops the run with `RunCanceled`.
    public var isCanceled: () -> Bool = { false }
    /// Collect per-layer timings (for `stylist bench`).
    public var recordTimings = false
    public private(set) var timings: [LayerTiming] = []

    /// Force band processing with this many final rows per band (tests); nil lets the network decide.
    public var forcedBandRows: Int?

    /// Starts no run of the buffer cache (`EngineMemory.beginRun`): contexts nest and exist per worker.
    public init() {}

    /// Throws `RunCanceled` if the run was canceled (for long layers that work in pieces).
    public func checkCancellation() throws {
        if isCanceled() { throw RunCanceled() }
    }

    /// Runs one named layer: checks cancellation first, then times it and reports progress.
    @discardableResult
    public func layer<T>(_ name: String, flops: Double, kind: String = "", _ body: () throws -> T) throws -> T {
        if isCanceled() { throw RunCanceled() }
        let start = recordTimings ? DispatchTime.now().uptimeNanoseconds : 0
        let result = try body()
        if recordTimings {
            let s = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            timings.append(LayerTiming(name: name, seconds: s, flops: flops, kind: kind))
        }
        doneFlops += flops
        if let onProgress, plannedFlops > 0 { onProgress(min(1, doneFlops / plannedFlops)) }
        return result
    }
}
