import Foundation
import CSystemMemory
#if canImport(Glibc)
import Glibc
#endif

/// Engine allocations. Large buffers are 2 MiB aligned and advised for transparent huge pages:
/// a conv tile touches dozens of rows a page apart, and with 4 KiB pages that alone overflows
/// the L1 TLB at 1024-pixel widths (measured: 16->16 3x3 at 1024^2 ran at half the speed of 256^2).
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
        if BufferCache.shared.give(UnsafeMutableRawPointer(p)) { return }
        Glibc.free(p)
    }
}

/// What the engine keeps allocated between layers and jobs, and a way to give it back.
public enum EngineMemory {
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
/// a fresh mapping costs a page fault and zeroing per page on first touch (measured: about 11% of
/// a MicroAST 1024 job's CPU time was system time). Bounded, so peak memory barely moves.
final class BufferCache: @unchecked Sendable {
    static let shared = BufferCache()
    /// Most bytes kept idle in the cache: enough that repeated jobs of the benchmarked networks and
    /// sizes drop and re-fault no huge buffer between runs (half of it did not), without raising
    /// peak RSS, because idle buffers are reused instead of new ones being allocated beside them
    /// (figures in BENCHMARKS.md, "Memory").
    static let capacityBytes = 384 << 20
    private let lock = NSLock()
    private var sizes: [UnsafeMutableRawPointer: Int] = [:]   // every large live or cached buffer
    private var idle: [Int: [UnsafeMutableRawPointer]] = [:]   // size -> idle buffers
    private var idleBytes = 0

    func noteSize(_ p: UnsafeMutableRawPointer, _ bytes: Int) {
        lock.lock(); sizes[p] = bytes; lock.unlock()
    }

    /// The smallest idle buffer of at least `bytes` (a 2 MiB multiple) and at most 1.5x that, if one is cached.
    func take(bytes: Int) -> UnsafeMutableRawPointer? {
        lock.lock(); defer { lock.unlock() }
        var best: Int?
        for size in idle.keys where size >= bytes && 2 * size <= 3 * bytes && size < (best ?? .max) { best = size }
        guard let size = best, var list = idle[size], let p = list.popLast() else { return nil }
        idle[size] = list.isEmpty ? nil : list
        idleBytes -= size
        return p
    }

    var idleByteCount: Int { lock.lock(); defer { lock.unlock() }; return idleBytes }

    /// Removes every idle buffer from the cache and returns them for the caller to free.
    func drain() -> [UnsafeMutableRawPointer] {
        lock.lock(); defer { lock.unlock() }
        let all = idle.values.flatMap { $0 }
        for p in all { sizes[p] = nil }
        idle = [:]
        idleBytes = 0
        return all
    }

    /// Keeps a large buffer for reuse; false when it is not one of ours or the cache is full
    /// (the caller then frees it, and the cache forgets it).
    func give(_ p: UnsafeMutableRawPointer) -> Bool {
        lock.lock(); defer { lock.unlock() }
        guard let bytes = sizes[p] else { return false }
        if idleBytes + bytes > BufferCache.capacityBytes {
            sizes[p] = nil
            return false
        }
        idle[bytes, default: []].append(p)
        idleBytes += bytes
        return true
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
