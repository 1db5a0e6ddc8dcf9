import Dispatch
import Engine
import Foundation

/// Hands the engine's idle buffers back to the system once no job has run for `delay` seconds.
///
/// Releasing the moment the queue drains would make every job of a client that sends one job after
/// another start cold: up to 384 MB of activations page-faulted and zeroed again, a visible share
/// of a large job (BENCHMARKS.md, "End-to-end job time"). Waiting a few seconds keeps such a
/// sequence warm while an idle server still returns the memory.
final class EngineIdleRelease: @unchecked Sendable {
    private let delay: TimeInterval
    private let release: @Sendable () -> Void
    private let lock = NSLock()
    private var generation = 0   // bumped by every job start: a pending release from before is void
    private var running = 0

    init(delay: TimeInterval, release: @escaping @Sendable () -> Void = { EngineMemory.releaseIdle() }) {
        self.delay = delay
        self.release = release
    }

    /// A job starts: no release happens until the queue drains again.
    func jobStarted() {
        lock.lock()
        generation += 1
        running += 1
        lock.unlock()
    }

    /// A job ended (finished, failed or canceled).
    func jobEnded() {
        lock.lock()
        running -= 1
        lock.unlock()
    }

    /// The queue drained: release after the delay unless a job starts meanwhile.
    func becameIdle() {
        lock.lock()
        let scheduled = generation
        lock.unlock()
        DispatchQueue.global(qos: .utility).asyncAfter(deadline: .now() + delay) { [self] in
            lock.lock()
            let stillIdle = generation == scheduled && running == 0
            lock.unlock()
            if stillIdle { release() }
        }
    }
}
