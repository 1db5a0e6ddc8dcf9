import Foundation

/// How the engine builds and runs layers: handed to each layer when it is built (the networks
/// pass theirs down), so tests and `stylist bench` choose paths without touching shared state.
public struct EngineOptions: Sendable, Equatable {
    /// Dense 3x3 convs may use Winograd F(4x4) (off: direct convolution everywhere, for comparison).
    public var winograd = true
    /// Dense 3x3 convs with at least this many input and output channels use Winograd. With the
    /// micro-kernel's flat tap loop, F(4x4) beats direct convolution from 16 channels (`stylist
    /// bench --conv`; BENCHMARKS.md); 12 channels favour F(4x4) too, 8 are mixed. No shipped layer
    /// has 4-15 channels.
    public var winogradMinChannels = 16
    /// Narrow dense 3x3 convs of nearest-upsampled inputs take the polyphase path.
    public var polyphase = true
    /// Use the AVX-512 micro-kernels when `EngineBuild.runsAVX512Kernels` (off: the AVX2 kernels,
    /// for A/B comparisons and tests; `stylist bench --no-avx512`).
    public var avx512 = true
    /// Bytes of transformed inputs and products (V and M) per Winograd task: this CPU's L2 cache,
    /// so that the products find V there and the output transform finds M (wide layers take a
    /// minimum number of tiles instead; `Conv2D.runWinograd4`).
    public var winogradTaskBytes = EngineOptions.l2CacheBytes

    /// This CPU's per-core L2 cache size (512 KiB when the system does not say).
    public static let l2CacheBytes: Int = {
        #if os(Linux)
        let reported = sysconf(Int32(_SC_LEVEL2_CACHE_SIZE))
        if reported > 0 { return reported }
        #endif
        return 512 << 10
    }()

    /// The product's choices.
    public init() {}
}
