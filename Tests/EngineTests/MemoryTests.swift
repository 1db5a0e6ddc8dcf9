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
}
