import Foundation
import CSystemMemory
#if canImport(Glibc)
import Glibc
#endif

/// Engine allocations. Large buffers are 2 MiB aligned and advised for transparent huge pages:
/// a conv tile touches dozens of rows a page apart, and with 4 KiB pages that alone overflows
/// the L1 TLB at 1024-pixel widths, where a layer would otherwise run far slower than at 256.
enum Memory {
    static let hugePage = 2 << 20

    /// Uninitialised floats, 64-byte aligned (2 MiB aligned and huge-page advised from 1 MiB up).
    static func allocateFloats(_ count: Int) -> UnsafeMutablePointer<Float> {
        let bytes = max(count, 1) * MemoryLayout<Float>.stride
        var raw: UnsafeMutableRawPointer?
        if bytes >= 1 << 20 {
            let rounded = (bytes + hugePage - 1) / hugePage * hugePage
            if let reused = BufferCache.shared.take(bytes: rounded) {
                return reused.bindMemory(to: Float.self, capacity: count)
            }
            guard posix_memalign(&raw, hugePage, rounded) == 0, let raw else { fatalError("out of memory allocating \(rounded) bytes") }
            BufferCache.shared.noteSize(raw, rounded)
            #if os(Linux)
            _ = madvise(raw, rounded, MADV_HUGEPAGE)
            #endif
            return raw.bindMemory(to: Float.self, capacity: count)
        }
        guard posix_memalign(&raw, 64, bytes) == 0, let raw else { fatalError("out of memory allocating \(bytes) bytes") }
        return raw.bindMemory(to: Float.self, capacity: count)
    }

    static func free(_ p: UnsafeMutablePointer<Float>) {
        let (kept, evicted) = BufferCache.shared.give(UnsafeMutableRawPointer(p))
        for old in evicted { Glibc.free(old) }
        if !kept { Glibc.free(p) }
    }
}

/// What the engine keeps allocated between layers and jobs, and a way to give it back.
public enum EngineMemory {
    /// Starts a job's run, once per job: buffers freed before it may serve the job's smaller tensors.
    public static func beginRun() { BufferCache.shared.beginRun() }

    /// Bytes held idle for reuse: freed activations in the buffer cache and pooled scratch.
    public static var idleBytes: Int { BufferCache.shared.idleByteCount + ScratchPool.shared.idleByteCount }

    /// Frees every idle buffer and pooled scratch (buffers in use are untouched), then asks malloc
    /// to return free memory to the system. A server calls it when its queue drains: the next job
    /// pays the page faults again, an idle server no longer holds up to 384 MB.
    public static func releaseIdle() {
        ScratchPool.shared.drain()
        for p in BufferCache.shared.drain() { Glibc.free(p) }
        // Freed buffers below malloc's mmap threshold stay in the heap until trimmed.
        stylist_release_free_heap()
    }
}

/// Large buffers freed by one layer are handed to the next instead of going back to the kernel:
/// a fresh mapping costs a page fault and zeroing per page on first touch, a visible share of a
/// large job's CPU time (BENCHMARKS.md, "Engine techniques"). Bounded, so peak memory barely moves.
final class BufferCache: @unchecked Sendable {
    static let shared = BufferCache()
    /// Most bytes kept idle in the cache: enough that repeated jobs of the benchmarked networks and
    /// sizes drop and re-fault no huge buffer between runs (half of it is not), without raising
    /// peak RSS, because idle buffers are reused instead of new ones being allocated beside them
    /// (figures in BENCHMARKS.md, "Memory").
    static let defaultCapacityBytes = 384 << 20
    let capacityBytes: Int
    private let lock = NSLock()
    private var sizes: [UnsafeMutableRawPointer: Int] = [:]   // every large live or cached buffer
    /// size -> idle buffers, each with the tick it was given back at (oldest first).
    private var idle: [Int: [(pointer: UnsafeMutableRawPointer, tick: UInt64)]] = [:]
    private var idleBytes = 0
    private var tick: UInt64 = 0

    init(capacityBytes: Int = BufferCache.defaultCapacityBytes) {
        self.capacityBytes = capacityBytes
    }

    func noteSize(_ p: UnsafeMutableRawPointer, _ bytes: Int) {
        lock.lock(); sizes[p] = bytes; lock.unlock()
    }

    /// Buffers given back at or before this tick were left by earlier runs (`EngineMemory.beginRun`).
    private var runStartTick: UInt64 = 0
    /// Earlier runs' buffers serving smaller tensors in this run: given back, they still count as
    /// an earlier run's, so the next tensor of the smaller size reuses them too.
    private var lent: Set<UnsafeMutableRawPointer> = []

    /// A new run begins: buffers earlier runs gave back may now serve smaller requests too.
    func beginRun() {
        lock.lock(); runStartTick = tick; lock.unlock()
    }

    /// The smallest idle buffer of at least `bytes` (a 2 MiB multiple) that is at most 1.5x that
    /// or was left by an earlier run, if one is cached. Within a run a much larger buffer is not
    /// taken: a later layer of its own size would then have to map a fresh one. A buffer of an
    /// earlier run is idle because the jobs changed size, and serving a smaller job from it saves
    /// that job faulting in fresh memory while the larger buffers sit unused.
    /// Of several of one size, the one given back last (the likeliest still in cache and TLB),
    /// or, beyond 1.5x, the one given back first.
    func take(bytes: Int) -> UnsafeMutableRawPointer? {
        lock.lock(); defer { lock.unlock() }
        var best: Int?
        for (size, list) in idle where size >= bytes && size < (best ?? .max) {
            if 2 * size <= 3 * bytes || list[0].tick <= runStartTick { best = size }
        }
        guard let size = best, var list = idle[size] else { return nil }
        let withinReach = 2 * size <= 3 * bytes
        let entry = withinReach ? list.removeLast() : list.removeFirst()
        if !withinReach { lent.insert(entry.pointer) }
        idle[size] = list.isEmpty ? nil : list
        idleBytes -= size
        return entry.pointer
    }

    var idleByteCount: Int { lock.lock(); defer { lock.unlock() }; return idleBytes }

    /// Removes every idle buffer from the cache and returns them for the caller to free.
    func drain() -> [UnsafeMutableRawPointer] {
        lock.lock(); defer { lock.unlock() }
        let all = idle.values.flatMap { $0.map(\.pointer) }
        for p in all { sizes[p] = nil }
        idle = [:]
        idleBytes = 0
        return all
    }

    /// Keeps a large buffer for reuse. When that would overfill the cache, the buffers idle the
    /// longest make room: after a change of job size they are the old size's, which the new jobs
    /// cannot use, while refusing the new size's buffers would leave every job of it cold.
    /// `kept` is false when `p` is not one of ours or alone exceeds the capacity (the caller frees
    /// it); `evicted` are buffers the cache forgot, for the caller to free.
    func give(_ p: UnsafeMutableRawPointer) -> (kept: Bool, evicted: [UnsafeMutableRawPointer]) {
        lock.lock(); defer { lock.unlock() }
        guard let bytes = sizes[p] else { return (false, []) }
        guard bytes <= capacityBytes else {
            sizes[p] = nil
            return (false, [])
        }
        var evicted: [UnsafeMutableRawPointer] = []
        while idleBytes + bytes > capacityBytes, let size = oldestIdleSize() {
            let old = idle[size]!.removeFirst().pointer
            if idle[size]!.isEmpty { idle[size] = nil }
            idleBytes -= size
            sizes[old] = nil
            evicted.append(old)
        }
        if lent.remove(p) != nil {
            idle[bytes, default: []].insert((p, runStartTick), at: 0)   // the list stays oldest first
        } else {
            tick += 1
            idle[bytes, default: []].append((p, tick))
        }
        idleBytes += bytes
        return (true, evicted)
    }

    /// The size whose oldest idle buffer was given back before every other idle buffer (lock held).
    private func oldestIdleSize() -> Int? {
        idle.min { $0.value[0].tick < $1.value[0].tick }?.key
    }
}

/// Reusable per-task scratch buffers: kernels check one out for the duration of a chunk of work,
/// so huge-page backed scratch is faulted in once per process, not once per layer.
final class ScratchPool: @unchecked Sendable {
    static let shared = ScratchPool()
    private let lock = NSLock()
    private var free: [(pointer: UnsafeMutablePointer<Float>, capacity: Int)] = []

    var idleByteCount: Int { lock.lock(); defer { lock.unlock() }; return free.map(\.capacity).reduce(0, +) * MemoryLayout<Float>.stride }

    /// Frees every pooled buffer not checked out.
    func drain() {
        lock.lock()
        let all = free
        free = []
        lock.unlock()
        for b in all { Memory.free(b.pointer) }
    }

    /// Runs `body` with at least `count` floats of scratch (contents undefined).
    func with<R>(_ count: Int, _ body: (UnsafeMutablePointer<Float>) -> R) -> R {
        lock.lock()
        var buffer: (pointer: UnsafeMutablePointer<Float>, capacity: Int)
        if let i = free.firstIndex(where: { $0.capacity >= count }) {
            buffer = free.remove(at: i)
            lock.unlock()
        } else {
            lock.unlock()
            let capacity = max(count, 256 * 1024)   // >= 1 MiB, so huge-page backed
            buffer = (Memory.allocateFloats(capacity), capacity)
        }
        defer {
            lock.lock()
            free.append(buffer)
            // Keep the pool bounded: drop the smallest buffers beyond a few per core.
            if free.count > 4 * Parallel.threadCount + 4 {
                free.sort { $0.capacity > $1.capacity }
                Memory.free(free.removeLast().pointer)
            }
            lock.unlock()
        }
        return body(buffer.pointer)
    }
}
