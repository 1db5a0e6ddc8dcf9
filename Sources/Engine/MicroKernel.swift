// The register-blocked micro-kernels that every convolution path runs (direct, Winograd's matrix
// products, polyphase), with the SIMD loads, stores and multiply-adds they inline: one file, so
// that builds without whole-module optimisation (debug) still inline those into the micro-kernels.
// The AVX-512 kernels live in their own module (EngineKernels512, compiled for AVX-512);
// `MicroKernels` picks a layer's set once, when it is built.

import CCPUFeatures
import EngineKernels512

/// The micro-kernels a layer runs, with their tile widths: the AVX-512 ones (8 or 4 channels x 48
/// pixels, 3 x 64) when the build has them, the CPU and operating system run them, and the layer's options
/// allow them; else the AVX2 (or portable) ones (4 x 24 and 3 x 32). Every caller steps by these
/// widths and sizes its scratch from them, so each read of a tile stays in bounds.
struct MicroKernels {
    let avx512: Bool
    /// Pixels per tile of `tile(channels:_:)`.
    let tilePixels: Int
    /// Pixels per tile of `tile3(_:)`.
    let wideTilePixels: Int

    init(options: EngineOptions) {
        avx512 = options.avx512 && EngineBuild.runsAVX512Kernels
        tilePixels = avx512 ? Kernels512.tilePixels : Conv2D.tilePixels
        wideTilePixels = avx512 ? Kernels512.wideTilePixels : Conv2D.wideTilePixels
    }

    /// One tile of `channels` (1...4) output channels x `tilePixels`.
    @inline(__always)
    func tile(channels: Int, _ args: TileArgs) {
        if avx512 { convTile48(channels: channels, args) } else { convTile(channels: channels, args) }
    }

    /// Every output channel of one pixel tile. `first` describes channel 0: its weights start the
    /// packed 4-channel weight tiles (`weightsPerChannel` floats per channel, so channel t0's tile
    /// starts `t0 * weightsPerChannel` on), later channels' outputs follow at `outStride` and their
    /// biases after `first.bias`. The AVX-512 set takes 8 channels at a time while at least 8 are left.
    @inline(__always)
    func allChannels(_ outChannels: Int, weightsPerChannel: Int, _ first: TileArgs) {
        func channel(_ t0: Int) -> TileArgs {
            TileArgs(src: first.src, offsets: first.offsets, taps: first.taps, weights: first.weights + t0 * weightsPerChannel,
                     out: first.out + t0 * first.outStride, outStride: first.outStride, bias: first.bias + t0,
                     relu: first.relu, valid: first.valid)
        }
        var t0 = 0
        if avx512 {
            while outChannels - t0 >= 8 {
                let args = channel(t0)
                convTile48x8(args, secondWeights: args.weights + Conv2D.tileChannels * weightsPerChannel)
                t0 += 8
            }
        }
        while t0 < outChannels {
            let count = min(Conv2D.tileChannels, outChannels - t0)
            tile(channels: count, channel(t0))
            t0 += count
        }
    }

    /// One tile of exactly 3 output channels x `wideTilePixels`.
    @inline(__always)
    func tile3(_ args: TileArgs) {
        if avx512 { convTile3x64(args) } else { convTile3x32(args) }
    }
}

extension EngineBuild {
    /// True when this binary has the AVX-512 micro-kernels and this CPU and operating system can run
    /// them (CPUID: AVX-512 F, VL, DQ, BW; XGETBV: zmm and opmask state saved). Layers use them
    /// unless `EngineOptions.avx512` is off. Checked once.
    public static let runsAVX512Kernels: Bool = {
        #if STYLIST_AVX512_KERNELS
        return stylist_cpu_has_avx512() != 0
        #else
        return false
        #endif
    }()
}


/// Every tap's offset from a tile's first input value, in the packed weights' order
/// ([channel][ky][kx]): the micro-kernel runs one flat loop over them. Nested channel/row/column
/// loops of 3 iterations each spend their time on branches, and lose far more speed than long
/// loops when the machine is busy (BENCHMARKS.md, "Engine techniques").
struct TapOffsets {
    let pointer: UnsafeMutablePointer<Int>
    let count: Int

    /// `channels` x `kh` rows (channels `channelStride` apart, rows `rowStride` apart), columns at `columns`.
    /// `rowSlot` maps a kernel row to the scratch row holding it (a ring's rotation).
    init(channels: Int, channelStride: Int, kh: Int = 1, rowStride: Int = 0, columns: [Int] = [0],
         rowSlot: (Int) -> Int = { $0 }) {
        count = channels * kh * columns.count
        pointer = .allocate(capacity: count)
        var i = 0
        for c in 0..<channels {
            for ky in 0..<kh {
                for x in columns { pointer[i] = c * channelStride + rowSlot(ky) * rowStride + x; i += 1 }
            }
        }
    }

    func deallocate() { pointer.deallocate() }
}

/// Eight floats from any address.
@inline(__always)
func load8(_ p: UnsafePointer<Float>) -> SIMD8<Float> {
    UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
}

/// Stores eight floats at any address.
@inline(__always)
func store8(_ v: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD8<Float>.self)
}

/// The micro-kernel specialised for a tile of `channels` (1...4) output channels. Never inlined:
/// inside a large caller (a Winograd task, a row loop) the 12-accumulator loop loses registers
/// and runs markedly slower (BENCHMARKS.md, "Engine techniques").
@inline(never)
func convTile(channels: Int, _ args: TileArgs) {
    switch channels {
    case 4: convTile(4, args)
    case 3: convTile(3, args)
    case 2: convTile(2, args)
    default: convTile(1, args)
    }
}

/// The micro-kernel: `T` output channels (1...4) x 24 pixels, twelve SIMD8 accumulators at most.
/// `T` is a literal at every call site, so inlining removes the branches on it.
@inline(__always)
func convTile(_ T: Int, _ a: TileArgs) {
    var a00 = SIMD8<Float>(), a01 = SIMD8<Float>(), a02 = SIMD8<Float>()
    var a10 = SIMD8<Float>(), a11 = SIMD8<Float>(), a12 = SIMD8<Float>()
    var a20 = SIMD8<Float>(), a21 = SIMD8<Float>(), a22 = SIMD8<Float>()
    var a30 = SIMD8<Float>(), a31 = SIMD8<Float>(), a32 = SIMD8<Float>()
    var wp = a.weights
    for t in 0..<a.taps {
        let p = a.src + a.offsets[t]
        let v0 = load8(p), v1 = load8(p + 8), v2 = load8(p + 16)
        let w0 = SIMD8<Float>(repeating: wp[0])
        madd(&a00, w0, v0); madd(&a01, w0, v1); madd(&a02, w0, v2)
        if T > 1 {
            let w1 = SIMD8<Float>(repeating: wp[1])
            madd(&a10, w1, v0); madd(&a11, w1, v1); madd(&a12, w1, v2)
        }
        if T > 2 {
            let w2 = SIMD8<Float>(repeating: wp[2])
            madd(&a20, w2, v0); madd(&a21, w2, v1); madd(&a22, w2, v2)
        }
        if T > 3 {
            let w3 = SIMD8<Float>(repeating: wp[3])
            madd(&a30, w3, v0); madd(&a31, w3, v1); madd(&a32, w3, v2)
        }
        wp += T
    }
    storeTile(T, a, a00, a01, a02, a10, a11, a12, a20, a21, a22, a30, a31, a32)
}

/// Bias, activation and store of a tile's accumulators, written out per channel: the optimizer
/// does not inline a per-channel helper here, and calls to one pass the accumulators through memory.
@inline(__always)
func storeTile(_ T: Int, _ a: TileArgs, _ a00: SIMD8<Float>, _ a01: SIMD8<Float>, _ a02: SIMD8<Float>,
               _ a10: SIMD8<Float>, _ a11: SIMD8<Float>, _ a12: SIMD8<Float>, _ a20: SIMD8<Float>, _ a21: SIMD8<Float>,
               _ a22: SIMD8<Float>, _ a30: SIMD8<Float>, _ a31: SIMD8<Float>, _ a32: SIMD8<Float>) {
    var a00 = a00, a01 = a01, a02 = a02, a10 = a10, a11 = a11, a12 = a12
    var a20 = a20, a21 = a21, a22 = a22, a30 = a30, a31 = a31, a32 = a32
    let full = a.valid == Conv2D.tilePixels
    do {
        let b = SIMD8<Float>(repeating: a.bias[0])
        a00 += b; a01 += b; a02 += b
        if a.relu { a00 = relu8(a00); a01 = relu8(a01); a02 = relu8(a02) }
        let dst = a.out
        if full { store8(a00, dst); store8(a01, dst + 8); store8(a02, dst + 16) } else { storePartialTile(a00, a01, a02, dst, a.valid) }
    }
    if T > 1 {
        let b = SIMD8<Float>(repeating: a.bias[1])
        a10 += b; a11 += b; a12 += b
        if a.relu { a10 = relu8(a10); a11 = relu8(a11); a12 = relu8(a12) }
        let dst = a.out + a.outStride
        if full { store8(a10, dst); store8(a11, dst + 8); store8(a12, dst + 16) } else { storePartialTile(a10, a11, a12, dst, a.valid) }
    }
    if T > 2 {
        let b = SIMD8<Float>(repeating: a.bias[2])
        a20 += b; a21 += b; a22 += b
        if a.relu { a20 = relu8(a20); a21 = relu8(a21); a22 = relu8(a22) }
        let dst = a.out + 2 * a.outStride
        if full { store8(a20, dst); store8(a21, dst + 8); store8(a22, dst + 16) } else { storePartialTile(a20, a21, a22, dst, a.valid) }
    }
    if T > 3 {
        let b = SIMD8<Float>(repeating: a.bias[3])
        a30 += b; a31 += b; a32 += b
        if a.relu { a30 = relu8(a30); a31 = relu8(a31); a32 = relu8(a32) }
        let dst = a.out + 3 * a.outStride
        if full { store8(a30, dst); store8(a31, dst + 8); store8(a32, dst + 16) } else { storePartialTile(a30, a31, a32, dst, a.valid) }
    }
}

/// The micro-kernel for layers with exactly 3 output channels: 3 channels x 32 pixels, twelve
/// accumulators, 4 loads and 3 broadcasts per 12 FMAs (a 3 x 24 tile does 9 FMAs for 6 loads).
@inline(never)
func convTile3x32(_ a: TileArgs) {
    var a00 = SIMD8<Float>(), a01 = SIMD8<Float>(), a02 = SIMD8<Float>(), a03 = SIMD8<Float>()
    var a10 = SIMD8<Float>(), a11 = SIMD8<Float>(), a12 = SIMD8<Float>(), a13 = SIMD8<Float>()
    var a20 = SIMD8<Float>(), a21 = SIMD8<Float>(), a22 = SIMD8<Float>(), a23 = SIMD8<Float>()
    var wp = a.weights
    for t in 0..<a.taps {
        // Weights first, then one input vector at a time: 12 accumulators + 3 weights + 1 input
        // fill the 16 registers exactly (holding four inputs at once spills two accumulators).
        let p = a.src + a.offsets[t]
        let w0 = SIMD8<Float>(repeating: wp[0]), w1 = SIMD8<Float>(repeating: wp[1]), w2 = SIMD8<Float>(repeating: wp[2])
        let v0 = load8(p)
        madd(&a00, w0, v0); madd(&a10, w1, v0); madd(&a20, w2, v0)
        let v1 = load8(p + 8)
        madd(&a01, w0, v1); madd(&a11, w1, v1); madd(&a21, w2, v1)
        let v2 = load8(p + 16)
        madd(&a02, w0, v2); madd(&a12, w1, v2); madd(&a22, w2, v2)
        let v3 = load8(p + 24)
        madd(&a03, w0, v3); madd(&a13, w1, v3); madd(&a23, w2, v3)
        wp += 3
    }
    storeWideRow(a, 0, a00, a01, a02, a03)
    storeWideRow(a, 1, a10, a11, a12, a13)
    storeWideRow(a, 2, a20, a21, a22, a23)
}

/// Bias, activation and store of one channel of a 32-pixel tile.
@inline(__always)
func storeWideRow(_ a: TileArgs, _ c: Int, _ r0: SIMD8<Float>, _ r1: SIMD8<Float>, _ r2: SIMD8<Float>, _ r3: SIMD8<Float>) {
    let b = SIMD8<Float>(repeating: a.bias[c])
    var r0 = r0 + b, r1 = r1 + b, r2 = r2 + b, r3 = r3 + b
    if a.relu { r0 = relu8(r0); r1 = relu8(r1); r2 = relu8(r2); r3 = relu8(r3) }
    let dst = a.out + c * a.outStride
    if a.valid == Conv2D.wideTilePixels {
        store8(r0, dst); store8(r1, dst + 8); store8(r2, dst + 16); store8(r3, dst + 24)
    } else {
        storePartialTile(r0, r1, r2, dst, min(a.valid, Conv2D.tilePixels))
        for i in Conv2D.tilePixels..<max(Conv2D.tilePixels, a.valid) { dst[i] = r3[i - Conv2D.tilePixels] }
    }
}

/// The first `valid` of 24 values (a tile at the right edge). Out of line, so the full-tile path
/// stays small enough to be inlined into the micro-kernel.
@inline(never)
func storePartialTile(_ r0: SIMD8<Float>, _ r1: SIMD8<Float>, _ r2: SIMD8<Float>, _ dst: UnsafeMutablePointer<Float>, _ valid: Int) {
    for i in 0..<min(valid, 8) { dst[i] = r0[i] }
    for i in 8..<max(8, min(valid, 16)) { dst[i] = r1[i - 8] }
    for i in 16..<max(16, min(valid, 24)) { dst[i] = r2[i - 16] }
}

/// max(v, 0) per lane as one vmaxps. The stdlib's `pointwiseMax` on SIMD8<Float> compiles to an
/// out-of-line, lane-by-lane loop with NaN checks, slow enough to show in whole-network runs; this
/// keeps NaN lanes.
@inline(__always)
func relu8(_ v: SIMD8<Float>) -> SIMD8<Float> {
    v.replacing(with: 0, where: v .< 0)
}

/// acc += a * b. One fused vfmadd in AVX2+FMA builds; a separate multiply and add in portable
/// builds, where `addProduct` would have to emulate an exact fused multiply-add in software.
@inline(__always)
func madd<V: SIMD>(_ acc: inout V, _ a: V, _ b: V) where V.Scalar: FloatingPoint {
    #if STYLIST_AVX2_BUILD
    acc.addProduct(a, b)
    #else
    acc += a * b
    #endif
}
