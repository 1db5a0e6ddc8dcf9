import Dispatch
import Foundation

/// Splits loops across the machine's cores; one job uses every core.
public enum Parallel {
    /// The machine's cores: one job's loops use all of them unless `withThreads` says otherwise.
    public static let coreCount = max(1, ProcessInfo.processInfo.activeProcessorCount)

    /// Per-thread worker limit set by `withThreads` (a thread-local: nothing shared to mutate).
    private static let limitKey: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key, nil)
        return key
    }()

    /// Workers for loops started on the calling thread: `coreCount`, or the `withThreads` limit.
    public static var threadCount: Int {
        let limit = Int(bitPattern: pthread_getspecific(limitKey))
        return limit > 0 ? limit : coreCount
    }

    /// Runs `body` with the engine loops it starts on this thread limited to `threads` workers
    /// (for benchmarks); the previous limit is restored afterwards.
    public static func withThreads<T>(_ threads: Int, _ body: () throws -> T) rethrows -> T {
        let previous = pthread_getspecific(limitKey)
        pthread_setspecific(limitKey, UnsafeRawPointer(bitPattern: max(1, threads)))
        defer { pthread_setspecific(limitKey, previous) }
        return try body()
    }

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
    /// kernel's loop body lands in one huge function where the optimizer stops inlining SIMD loads,
    /// and single-threaded runs become markedly slower per core than threaded ones.
    @inline(never)
    static func runOutOfLine(_ body: (Range<Int>) -> Void, _ range: Range<Int>) {
        body(range)
    }
}
