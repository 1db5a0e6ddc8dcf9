import XCTest
@testable import Engine

/// The engine's reuse of freed activations, and handing them back when a server goes idle.
final class MemoryTests: XCTestCase {
    func testFreedActivationsAreReusedAndReleasedOnRequest() {
        EngineMemory.releaseIdle()
        XCTAssertEqual(EngineMemory.idleBytes, 0)
        var first: Tensor? = Tensor(channels: 4, height: 512, width: 512)   // 4 MiB: a cached size
        let address = first!.data
        first = nil
        XCTAssertGreaterThanOrEqual(EngineMemory.idleBytes, 4 << 20, "a freed activation is kept for the next layer")
        let second = Tensor(channels: 4, height: 512, width: 512)
        XCTAssertEqual(second.data, address, "the next activation of that size reuses it")
        XCTAssertEqual(EngineMemory.idleBytes, 0)

        // Scratch used by a convolution is pooled too; releaseIdle frees both kinds.
        let conv = Conv2D(weight: [Float](repeating: 0.1, count: 16 * 4 * 9), bias: [Float](repeating: 0, count: 16),
                          inChannels: 4, outChannels: 16, kernel: 3)
        second.data.update(repeating: 1, count: second.count)
        var out: Tensor? = conv(second)
        XCTAssertEqual(out!.data[0], 0.1 * 36, accuracy: 1e-5, "a constant image stays constant under reflection padding")
        out = nil
        XCTAssertGreaterThan(EngineMemory.idleBytes, 0)
        EngineMemory.releaseIdle()
        XCTAssertEqual(EngineMemory.idleBytes, 0)
    }

    func testAFullCacheEvictsItsLongestIdleBuffersForNewOnes() {
        let mib = 1 << 20
        let cache = BufferCache(capacityBytes: 16 * mib)
        // Fake addresses: the cache only books pointers, it never touches their memory.
        let pointers = (1...8).map { UnsafeMutableRawPointer(bitPattern: $0 << 24)! }
        let large = Array(pointers[0..<4]), small = Array(pointers[4..<8])
        for p in large { cache.noteSize(p, 4 * mib) }
        for p in small { cache.noteSize(p, 2 * mib) }
        for p in large { XCTAssertEqual(cache.give(p).evicted, []) }
        XCTAssertEqual(cache.idleByteCount, 16 * mib)

        // A full cache of one size takes the next size's buffers, dropping the longest idle first.
        XCTAssertEqual(cache.give(small[0]).kept, true)
        XCTAssertEqual(cache.give(small[1]).evicted, [], "the first eviction made room for two")
        let third = cache.give(small[2])
        XCTAssertTrue(third.kept)
        XCTAssertEqual(third.evicted, [large[1]])
        XCTAssertEqual(cache.idleByteCount, 14 * mib)
        XCTAssertEqual(cache.take(bytes: 2 * mib), small[2], "the buffer given back last is reused first")
        XCTAssertEqual(cache.take(bytes: 4 * mib), large[3])

        // A buffer larger than the whole cache is never kept; one not booked is not ours.
        let huge = UnsafeMutableRawPointer(bitPattern: 9 << 24)!
        cache.noteSize(huge, 32 * mib)
        XCTAssertEqual(cache.give(huge).kept, false)
        XCTAssertEqual(cache.give(small[3]).kept, true)
        XCTAssertEqual(cache.give(UnsafeMutableRawPointer(bitPattern: 10 << 24)!).kept, false)
        XCTAssertEqual(Set(cache.drain()), Set([large[2], small[0], small[1], small[3]]))
        XCTAssertEqual(cache.idleByteCount, 0)
    }

    /// After a change to a smaller job size, the earlier run's larger buffers serve the new run
    /// instead of fresh memory being faulted in; within one run a much larger buffer is left for
    /// the layer of its own size. Only `EngineMemory.beginRun` starts a run, never a `RunContext`.
    func testALaterRunReusesLargerBuffersOfEarlierRuns() {
        EngineMemory.releaseIdle()
        var large: Tensor? = Tensor(channels: 16, height: 512, width: 512)   // 16 MiB
        let address = large!.data
        large = nil
        _ = RunContext()   // as a style encoded inside a job creates one
        let sameRun = Tensor(channels: 4, height: 512, width: 512)
        XCTAssertNotEqual(sameRun.data, address, "a new RunContext starts no run: the 16 MiB buffer waits for its own size")
        withExtendedLifetime(sameRun) {   // freed, its buffer would be the best fit for the next tensor
            EngineMemory.beginRun()
            let nextRun = Tensor(channels: 4, height: 512, width: 512)
            XCTAssertEqual(nextRun.data, address, "the next job's smaller tensor reuses the earlier run's larger buffer")
        }

        let mib = 1 << 20
        let cache = BufferCache(capacityBytes: 64 * mib)
        let pointers = (1...4).map { UnsafeMutableRawPointer(bitPattern: $0 << 24)! }
        for p in pointers { cache.noteSize(p, 16 * mib) }
        cache.beginRun()
        XCTAssertTrue(cache.give(pointers[0]).kept)
        XCTAssertNil(cache.take(bytes: 4 * mib), "a 16 MiB buffer of this run is not spent on a 4 MiB tensor")
        XCTAssertEqual(cache.take(bytes: 12 * mib), pointers[0], "within 1.5x it is")

        XCTAssertTrue(cache.give(pointers[0]).kept)
        XCTAssertTrue(cache.give(pointers[1]).kept)
        cache.beginRun()
        XCTAssertTrue(cache.give(pointers[2]).kept)
        XCTAssertEqual(cache.take(bytes: 2 * mib), pointers[0], "an earlier run's buffer, the longest idle first")
        XCTAssertEqual(cache.take(bytes: 2 * mib), pointers[1])
        XCTAssertNil(cache.take(bytes: 2 * mib), "the buffer this run gave back stays for its own size")
        XCTAssertTrue(cache.give(pointers[0]).kept)
        XCTAssertEqual(cache.take(bytes: 2 * mib), pointers[0], "lent to a smaller tensor and given back, it serves the next one")
        XCTAssertEqual(cache.take(bytes: 16 * mib), pointers[2])
    }
}
