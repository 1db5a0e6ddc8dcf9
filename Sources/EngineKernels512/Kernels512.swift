// The AVX-512 micro-kernels: the conv micro-kernel's tiles widened to SIMD16 vectors. This module
// is compiled with AVX-512 enabled (Package.swift) and the rest of the engine is not, so every
// entry point is public and never inlined: inlined into AVX2 code, it would be recompiled for
// AVX2 there. Callers check the CPU first (Engine's `MicroKernels`); nothing here runs on a CPU
// without AVX-512 F, VL, DQ and BW.

/// Arguments of one micro-kernel call (AVX2 and AVX-512 kernels alike): `taps` inputs at
/// `offsets` from `src`, each with a weight per output channel ([tap][tile] order); the first
/// `valid` of the tile's pixels are stored, `outStride` floats apart per channel, after bias and
/// optional ReLU.
public struct TileArgs {
    public let src: UnsafePointer<Float>
    public let offsets: UnsafePointer<Int>
    public let taps: Int
    public let weights: UnsafePointer<Float>
    public let out: UnsafeMutablePointer<Float>
    public let outStride: Int
    public let bias: UnsafePointer<Float>
    public let relu: Bool
    public let valid: Int

    @inlinable
    public init(src: UnsafePointer<Float>, offsets: UnsafePointer<Int>, taps: Int, weights: UnsafePointer<Float>,
                out: UnsafeMutablePointer<Float>, outStride: Int, bias: UnsafePointer<Float>, relu: Bool, valid: Int) {
        self.src = src; self.offsets = offsets; self.taps = taps; self.weights = weights
        self.out = out; self.outStride = outStride; self.bias = bias; self.relu = relu; self.valid = valid
    }
}

/// Tile widths of the AVX-512 kernels.
public enum Kernels512 {
    /// Pixels per tile of `convTile48`: three SIMD16 vectors.
    public static let tilePixels = 48
    /// Pixels per tile of `convTile3x64`.
    public static let wideTilePixels = 64
}

@inline(__always)
func load16(_ p: UnsafePointer<Float>) -> SIMD16<Float> {
    UnsafeRawPointer(p).loadUnaligned(as: SIMD16<Float>.self)
}

@inline(__always)
func store16(_ v: SIMD16<Float>, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD16<Float>.self)
}

/// max(v, 0) per lane as one vmaxps (the stdlib's `pointwiseMax` is a lane-by-lane loop); keeps NaN lanes.
@inline(__always)
func relu16(_ v: SIMD16<Float>) -> SIMD16<Float> {
    v.replacing(with: 0, where: v .< 0)
}

/// The AVX-512 micro-kernel for a tile of `channels` (1...4) output channels x 48 pixels: twelve
/// SIMD16 accumulators at most, 3 loads and 4 broadcasts per 12 fused multiply-adds.
@inline(never)
public func convTile48(channels: Int, _ args: TileArgs) {
    switch channels {
    case 4: convTile48x4(args)
    case 3: convTile48x3(args)
    case 2: convTile48x2(args)
    default: convTile48x1(args)
    }
}

// One function per channel count: called through one switch with the count as an argument, the
// optimizer folds the four inlined copies back into one loop that tests the count on every tap.
@inline(never) func convTile48x4(_ a: TileArgs) { convTile48(4, a) }
@inline(never) func convTile48x3(_ a: TileArgs) { convTile48(3, a) }
@inline(never) func convTile48x2(_ a: TileArgs) { convTile48(2, a) }
@inline(never) func convTile48x1(_ a: TileArgs) { convTile48(1, a) }

/// `T` is a literal at every call site, so inlining removes the branches on it.
@inline(__always)
func convTile48(_ T: Int, _ a: TileArgs) {
    var a00 = SIMD16<Float>(), a01 = SIMD16<Float>(), a02 = SIMD16<Float>()
    var a10 = SIMD16<Float>(), a11 = SIMD16<Float>(), a12 = SIMD16<Float>()
    var a20 = SIMD16<Float>(), a21 = SIMD16<Float>(), a22 = SIMD16<Float>()
    var a30 = SIMD16<Float>(), a31 = SIMD16<Float>(), a32 = SIMD16<Float>()
    var wp = a.weights
    for t in 0..<a.taps {
        let p = a.src + a.offsets[t]
        let v0 = load16(p), v1 = load16(p + 16), v2 = load16(p + 32)
        let w0 = SIMD16<Float>(repeating: wp[0])
        a00.addProduct(w0, v0); a01.addProduct(w0, v1); a02.addProduct(w0, v2)
        if T > 1 {
            let w1 = SIMD16<Float>(repeating: wp[1])
            a10.addProduct(w1, v0); a11.addProduct(w1, v1); a12.addProduct(w1, v2)
        }
        if T > 2 {
            let w2 = SIMD16<Float>(repeating: wp[2])
            a20.addProduct(w2, v0); a21.addProduct(w2, v1); a22.addProduct(w2, v2)
        }
        if T > 3 {
            let w3 = SIMD16<Float>(repeating: wp[3])
            a30.addProduct(w3, v0); a31.addProduct(w3, v1); a32.addProduct(w3, v2)
        }
        wp += T
    }
    // Bias, activation and store written out per channel: a per-channel helper is not inlined here,
    // and calls to one pass the accumulators through memory.
    let full = a.valid == Kernels512.tilePixels
    do {
        let b = SIMD16<Float>(repeating: a.bias[0])
        a00 += b; a01 += b; a02 += b
        if a.relu { a00 = relu16(a00); a01 = relu16(a01); a02 = relu16(a02) }
        let dst = a.out
        if full { store16(a00, dst); store16(a01, dst + 16); store16(a02, dst + 32) } else { storePartial(a00, a01, a02, dst, a.valid) }
    }
    if T > 1 {
        let b = SIMD16<Float>(repeating: a.bias[1])
        a10 += b; a11 += b; a12 += b
        if a.relu { a10 = relu16(a10); a11 = relu16(a11); a12 = relu16(a12) }
        let dst = a.out + a.outStride
        if full { store16(a10, dst); store16(a11, dst + 16); store16(a12, dst + 32) } else { storePartial(a10, a11, a12, dst, a.valid) }
    }
    if T > 2 {
        let b = SIMD16<Float>(repeating: a.bias[2])
        a20 += b; a21 += b; a22 += b
        if a.relu { a20 = relu16(a20); a21 = relu16(a21); a22 = relu16(a22) }
        let dst = a.out + 2 * a.outStride
        if full { store16(a20, dst); store16(a21, dst + 16); store16(a22, dst + 32) } else { storePartial(a20, a21, a22, dst, a.valid) }
    }
    if T > 3 {
        let b = SIMD16<Float>(repeating: a.bias[3])
        a30 += b; a31 += b; a32 += b
        if a.relu { a30 = relu16(a30); a31 = relu16(a31); a32 = relu16(a32) }
        let dst = a.out + 3 * a.outStride
        if full { store16(a30, dst); store16(a31, dst + 16); store16(a32, dst + 32) } else { storePartial(a30, a31, a32, dst, a.valid) }
    }
}

/// The AVX-512 micro-kernel for 8 output channels x 48 pixels: two 4-channel tiles of weights
/// (`a.weights` for channels 0-3, `secondWeights` for 4-7, each [tap][4]), outputs and biases of
/// channels 4-7 following those of 0-3 (`outStride` apart). 24 SIMD16 accumulators: each input
/// vector loaded feeds 8 multiply-adds instead of 4, halving the input loads per multiply-add,
/// which on wide layers come from L2.
@inline(never)
public func convTile48x8(_ a: TileArgs, secondWeights: UnsafePointer<Float>) {
    var a00 = SIMD16<Float>(), a01 = SIMD16<Float>(), a02 = SIMD16<Float>()
    var a10 = SIMD16<Float>(), a11 = SIMD16<Float>(), a12 = SIMD16<Float>()
    var a20 = SIMD16<Float>(), a21 = SIMD16<Float>(), a22 = SIMD16<Float>()
    var a30 = SIMD16<Float>(), a31 = SIMD16<Float>(), a32 = SIMD16<Float>()
    var a40 = SIMD16<Float>(), a41 = SIMD16<Float>(), a42 = SIMD16<Float>()
    var a50 = SIMD16<Float>(), a51 = SIMD16<Float>(), a52 = SIMD16<Float>()
    var a60 = SIMD16<Float>(), a61 = SIMD16<Float>(), a62 = SIMD16<Float>()
    var a70 = SIMD16<Float>(), a71 = SIMD16<Float>(), a72 = SIMD16<Float>()
    var wp = a.weights, wq = secondWeights
    for t in 0..<a.taps {
        let p = a.src + a.offsets[t]
        let v0 = load16(p), v1 = load16(p + 16), v2 = load16(p + 32)
        var w = SIMD16<Float>(repeating: wp[0])
        a00.addProduct(w, v0); a01.addProduct(w, v1); a02.addProduct(w, v2)
        w = SIMD16<Float>(repeating: wp[1])
        a10.addProduct(w, v0); a11.addProduct(w, v1); a12.addProduct(w, v2)
        w = SIMD16<Float>(repeating: wp[2])
        a20.addProduct(w, v0); a21.addProduct(w, v1); a22.addProduct(w, v2)
        w = SIMD16<Float>(repeating: wp[3])
        a30.addProduct(w, v0); a31.addProduct(w, v1); a32.addProduct(w, v2)
        w = SIMD16<Float>(repeating: wq[0])
        a40.addProduct(w, v0); a41.addProduct(w, v1); a42.addProduct(w, v2)
        w = SIMD16<Float>(repeating: wq[1])
        a50.addProduct(w, v0); a51.addProduct(w, v1); a52.addProduct(w, v2)
        w = SIMD16<Float>(repeating: wq[2])
        a60.addProduct(w, v0); a61.addProduct(w, v1); a62.addProduct(w, v2)
        w = SIMD16<Float>(repeating: wq[3])
        a70.addProduct(w, v0); a71.addProduct(w, v1); a72.addProduct(w, v2)
        wp += 4
        wq += 4
    }
    // Written out per channel, like `convTile48`'s epilogue.
    let full = a.valid == Kernels512.tilePixels
    let s = a.outStride
    do {
        let b = SIMD16<Float>(repeating: a.bias[0])
        a00 += b; a01 += b; a02 += b
        if a.relu { a00 = relu16(a00); a01 = relu16(a01); a02 = relu16(a02) }
        let dst = a.out
        if full { store16(a00, dst); store16(a01, dst + 16); store16(a02, dst + 32) } else { storePartial(a00, a01, a02, dst, a.valid) }
    }
    do {
        let b = SIMD16<Float>(repeating: a.bias[1])
        a10 += b; a11 += b; a12 += b
        if a.relu { a10 = relu16(a10); a11 = relu16(a11); a12 = relu16(a12) }
        let dst = a.out + s
        if full { store16(a10, dst); store16(a11, dst + 16); store16(a12, dst + 32) } else { storePartial(a10, a11, a12, dst, a.valid) }
    }
    do {
        let b = SIMD16<Float>(repeating: a.bias[2])
        a20 += b; a21 += b; a22 += b
        if a.relu { a20 = relu16(a20); a21 = relu16(a21); a22 = relu16(a22) }
        let dst = a.out + 2 * s
        if full { store16(a20, dst); store16(a21, dst + 16); store16(a22, dst + 32) } else { storePartial(a20, a21, a22, dst, a.valid) }
    }
    do {
        let b = SIMD16<Float>(repeating: a.bias[3])
        a30 += b; a31 += b; a32 += b
        if a.relu { a30 = relu16(a30); a31 = relu16(a31); a32 = relu16(a32) }
        let dst = a.out + 3 * s
        if full { store16(a30, dst); store16(a31, dst + 16); store16(a32, dst + 32) } else { storePartial(a30, a31, a32, dst, a.valid) }
    }
    do {
        let b = SIMD16<Float>(repeating: a.bias[4])
        a40 += b; a41 += b; a42 += b
        if a.relu { a40 = relu16(a40); a41 = relu16(a41); a42 = relu16(a42) }
        let dst = a.out + 4 * s
        if full { store16(a40, dst); store16(a41, dst + 16); store16(a42, dst + 32) } else { storePartial(a40, a41, a42, dst, a.valid) }
    }
    do {
        let b = SIMD16<Float>(repeating: a.bias[5])
        a50 += b; a51 += b; a52 += b
        if a.relu { a50 = relu16(a50); a51 = relu16(a51); a52 = relu16(a52) }
        let dst = a.out + 5 * s
        if full { store16(a50, dst); store16(a51, dst + 16); store16(a52, dst + 32) } else { storePartial(a50, a51, a52, dst, a.valid) }
    }
    do {
        let b = SIMD16<Float>(repeating: a.bias[6])
        a60 += b; a61 += b; a62 += b
        if a.relu { a60 = relu16(a60); a61 = relu16(a61); a62 = relu16(a62) }
        let dst = a.out + 6 * s
        if full { store16(a60, dst); store16(a61, dst + 16); store16(a62, dst + 32) } else { storePartial(a60, a61, a62, dst, a.valid) }
    }
    do {
        let b = SIMD16<Float>(repeating: a.bias[7])
        a70 += b; a71 += b; a72 += b
        if a.relu { a70 = relu16(a70); a71 = relu16(a71); a72 = relu16(a72) }
        let dst = a.out + 7 * s
        if full { store16(a70, dst); store16(a71, dst + 16); store16(a72, dst + 32) } else { storePartial(a70, a71, a72, dst, a.valid) }
    }
}

/// The first `valid` (0...48) of three vectors' values (a tile at the right edge). Out of line, so
/// the full-tile path stays small.
@inline(never)
func storePartial(_ r0: SIMD16<Float>, _ r1: SIMD16<Float>, _ r2: SIMD16<Float>, _ dst: UnsafeMutablePointer<Float>, _ valid: Int) {
    for i in 0..<min(valid, 16) { dst[i] = r0[i] }
    for i in 16..<max(16, min(valid, 32)) { dst[i] = r1[i - 16] }
    for i in 32..<max(32, min(valid, 48)) { dst[i] = r2[i - 32] }
}

/// The AVX-512 micro-kernel for layers with exactly 3 output channels: 3 channels x 64 pixels,
/// twelve SIMD16 accumulators, 4 loads and 3 broadcasts per 12 fused multiply-adds.
@inline(never)
public func convTile3x64(_ a: TileArgs) {
    var a00 = SIMD16<Float>(), a01 = SIMD16<Float>(), a02 = SIMD16<Float>(), a03 = SIMD16<Float>()
    var a10 = SIMD16<Float>(), a11 = SIMD16<Float>(), a12 = SIMD16<Float>(), a13 = SIMD16<Float>()
    var a20 = SIMD16<Float>(), a21 = SIMD16<Float>(), a22 = SIMD16<Float>(), a23 = SIMD16<Float>()
    var wp = a.weights
    for t in 0..<a.taps {
        let p = a.src + a.offsets[t]
        let w0 = SIMD16<Float>(repeating: wp[0]), w1 = SIMD16<Float>(repeating: wp[1]), w2 = SIMD16<Float>(repeating: wp[2])
        let v0 = load16(p), v1 = load16(p + 16), v2 = load16(p + 32), v3 = load16(p + 48)
        a00.addProduct(w0, v0); a10.addProduct(w1, v0); a20.addProduct(w2, v0)
        a01.addProduct(w0, v1); a11.addProduct(w1, v1); a21.addProduct(w2, v1)
        a02.addProduct(w0, v2); a12.addProduct(w1, v2); a22.addProduct(w2, v2)
        a03.addProduct(w0, v3); a13.addProduct(w1, v3); a23.addProduct(w2, v3)
        wp += 3
    }
    storeWideRow(a, 0, a00, a01, a02, a03)
    storeWideRow(a, 1, a10, a11, a12, a13)
    storeWideRow(a, 2, a20, a21, a22, a23)
}

/// Bias, activation and store of channel `c` of a 64-pixel tile.
@inline(__always)
func storeWideRow(_ a: TileArgs, _ c: Int, _ r0: SIMD16<Float>, _ r1: SIMD16<Float>, _ r2: SIMD16<Float>, _ r3: SIMD16<Float>) {
    let b = SIMD16<Float>(repeating: a.bias[c])
    var r0 = r0 + b, r1 = r1 + b, r2 = r2 + b, r3 = r3 + b
    if a.relu { r0 = relu16(r0); r1 = relu16(r1); r2 = relu16(r2); r3 = relu16(r3) }
    let dst = a.out + c * a.outStride
    if a.valid == Kernels512.wideTilePixels {
        store16(r0, dst); store16(r1, dst + 16); store16(r2, dst + 32); store16(r3, dst + 48)
    } else {
        storePartial(r0, r1, r2, dst, min(a.valid, 48))
        for i in 48..<max(48, min(a.valid, 64)) { dst[i] = r3[i - 48] }
    }
}
