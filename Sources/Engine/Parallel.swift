import Dispatch
import Foundation

/// Splits loops across the machine's cores; one job uses every core.
public enum Parallel {
    /// Worker count for engine loops (defaults to the active processor count; settable for tests and benchmarks).
    nonisolated(unsafe) public static var threadCount: Int = max(1, ProcessInfo.processInfo.activeProcessorCount)

    /// Runs `body(range)` over contiguous chunks of `0..<count`, in parallel when worth it.
    /// `minChunk` is the smallest number of iterations worth a thread hop.
    public static func forRanges(_ count: Int, minChunk: Int = 1, _ body: (Range<Int>) -> Void) {
        if count <= 0 { return }
        let threads = threadCount
        if threads <= 1 || count < 2 * minChunk {
            runOutOfLine(body, 0..<count)
            return
        }
        // A few chunks per thread balances uneven rows without much scheduling cost.
        let chunks = min(count / max(1, minChunk), threads * 16)
        if chunks <= 1 { runOutOfLine(body, 0..<count); return }
        withoutActuallyEscaping(body) { body in
            DispatchQueue.concurrentPerform(iterations: chunks) { i in
                let lo = count * i / chunks, hi = count * (i + 1) / chunks
                if lo < hi { body(lo..<hi) }
            }
        }
    }

    /// Calls `body` as a closure rather than letting it be inlined into the caller: inlined, a
    /// kernel's loop body lands in one huge function where the optimizer stops inlining SIMD loads
    /// (a single-threaded cd16x run was 1.5x slower per core than the threaded one).
    @inline(never)
    static func runOutOfLine(_ body: (Range<Int>) -> Void, _ range: Range<Int>) {
        body(range)
    }
}
