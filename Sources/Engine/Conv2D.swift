/// Activation fused into a layer's epilogue.
public enum Activation: Sendable { case none, relu }

/// A 2-D convolution with reflection padding, any kernel size, stride and group count,
/// with bias and activation fused. Weights are repacked once at construction for the micro-kernel.
///
/// How it runs: for each output row, the `kernel` input rows it needs are copied (reflection-padded,
/// and split into `stride` phases so stride-2 taps become contiguous loads) into a small per-thread
/// scratch; a register-blocked micro-kernel then accumulates 4 output channels x 24 pixels in twelve
/// SIMD8 registers. No padded copy or im2col of a whole tensor is ever made.
public final class Conv2D: @unchecked Sendable {
    public let inChannels: Int
    public let outChannels: Int
    public let kernel: Int
    public let stride: Int
    public let groups: Int
    public let padding: Int
    public let activation: Activation

    let inPerGroup: Int
    let outPerGroup: Int
    /// Packed weights: per group, per output tile of up to `tileChannels`, layout [ic][ky][kx][tile].
    let packed: UnsafeMutablePointer<Float>
    let packedCount: Int
    let biasValues: UnsafeMutablePointer<Float>

    static let tileChannels = 4
    static let tileVectors = 3
    static let tilePixels = tileVectors * 8

    /// `weight` is OIHW with I = inChannels / groups (PyTorch's layout); `padding` defaults to kernel / 2.
    public init(weight: [Float], bias: [Float], inChannels: Int, outChannels: Int, kernel: Int,
                stride: Int = 1, groups: Int = 1, padding: Int? = nil, activation: Activation = .none) {
        precondition(kernel >= 1 && stride >= 1 && groups >= 1, "bad conv geometry")
        precondition(inChannels % groups == 0 && outChannels % groups == 0, "channels not divisible by groups")
        self.inChannels = inChannels
        self.outChannels = outChannels
        self.kernel = kernel
        self.stride = stride
        self.groups = groups
        self.padding = padding ?? kernel / 2
        self.activation = activation
        inPerGroup = inChannels / groups
        outPerGroup = outChannels / groups
        let taps = kernel * kernel
        precondition(weight.count == outChannels * inPerGroup * taps, "weight count \(weight.count) != \(outChannels)x\(inPerGroup)x\(kernel)x\(kernel)")
        precondition(bias.count == outChannels, "bias count \(bias.count) != \(outChannels)")
        packedCount = weight.count
        packed = .allocate(capacity: packedCount)
        biasValues = .allocate(capacity: outChannels)
        bias.withUnsafeBufferPointer { biasValues.initialize(from: $0.baseAddress!, count: outChannels) }
        // Pack: for each output tile, all of its weights contiguous in the micro-kernel's read order.
        var dst = 0
        for g in 0..<groups {
            var t0 = 0
            while t0 < outPerGroup {
                let tile = min(Conv2D.tileChannels, outPerGroup - t0)
                for ic in 0..<inPerGroup {
                    for tap in 0..<taps {
                        for t in 0..<tile {
                            let oc = g * outPerGroup + t0 + t
                            packed[dst] = weight[(oc * inPerGroup + ic) * taps + tap]
                            dst += 1
                        }
                    }
                }
                t0 += tile
            }
        }
        precondition(dst == packedCount)
    }

    deinit {
        packed.deallocate()
        biasValues.deallocate()
    }

    /// Output spatial size for an input of `height` x `width`.
    public func outputSize(height: Int, width: Int) -> (height: Int, width: Int) {
        ((height + 2 * padding - kernel) / stride + 1, (width + 2 * padding - kernel) / stride + 1)
    }

    /// Multiply-adds x2 for one application at this output size (direct-convolution FLOPs).
    public func flops(outputHeight: Int, outputWidth: Int) -> Double {
        2.0 * Double(outChannels * inPerGroup * kernel * kernel) * Double(outputHeight * outputWidth)
    }

    /// Applies the convolution to a whole tensor.
    public func callAsFunction(_ input: Tensor) -> Tensor {
        precondition(input.channels == inChannels, "conv expects \(inChannels) channels, got \(input.shapeDescription)")
        let (ho, wo) = outputSize(height: input.height, width: input.width)
        let out = Tensor(channels: outChannels, height: ho, width: wo)
        run(input, into: out, inputRowOffset: 0, outputRows: 0..<ho, logicalInputHeight: input.height)
        return out
    }

    /// Computes output rows `outputRows` into `out` (rows indexed as in `out`).
    /// `input` may be a horizontal band of a taller logical image: its row 0 is logical row
    /// `inputRowOffset`, and reflection happens at the logical image's edges (`logicalInputHeight`).
    /// Output row i of `out` is logical output row `outputRows.lowerBound + i - outputRows.lowerBound`, i.e.
    /// out rows are logical rows; the caller arranges band offsets.
    public func run(_ input: Tensor, into out: Tensor, inputRowOffset: Int, outputRows: Range<Int>,
                    logicalInputHeight: Int, outputRowOffset: Int = 0) {
        let wo = out.width
        let k = kernel, s = stride, p = padding
        let w = input.width
        // Phase width: every tap of every 24-pixel tile must be readable.
        let tiles = (wo + Conv2D.tilePixels - 1) / Conv2D.tilePixels
        let phaseWidth = tiles * Conv2D.tilePixels + (k - 1) / s + 8
        let rowsPerChannel = k * s
        let scratchCount = inPerGroup * rowsPerChannel * phaseWidth
        let taps = UnsafeMutablePointer<Int>.allocate(capacity: k)
        for kx in 0..<k { taps[kx] = (kx % s) * phaseWidth + kx / s }
        defer { taps.deallocate() }
        let direct1x1 = k == 1 && s == 1 && p == 0
        let relu = activation == .relu
        let ocTileWeights = inPerGroup * k * k

        Parallel.forRanges(outputRows.count, minChunk: 1) { chunk in
            let scratch = direct1x1 ? nil : UnsafeMutablePointer<Float>.allocate(capacity: scratchCount)
            defer { scratch?.deallocate() }
            for i in chunk {
                let y = outputRows.lowerBound + i          // logical output row
                let oy = y - outputRowOffset               // row in `out`
                for g in 0..<groups {
                    let src: UnsafePointer<Float>
                    let rowStride: Int
                    if let scratch {
                        for ic in 0..<inPerGroup {
                            let plane = input.plane(g * inPerGroup + ic)
                            for ky in 0..<k {
                                let ly = reflect(y * s + ky - p, logicalInputHeight) - inputRowOffset
                                precondition(ly >= 0 && ly < input.height, "conv band lacks input row")
                                let row = plane + ly * w
                                let dst = scratch + (ic * k + ky) * s * phaseWidth
                                fillPaddedRow(row: row, width: w, pad: p, stride: s, phaseWidth: phaseWidth, into: dst)
                            }
                        }
                        src = UnsafePointer(scratch)
                        rowStride = s * phaseWidth
                    } else {
                        src = UnsafePointer(input.plane(g * inPerGroup) + (y - inputRowOffset) * w)
                        rowStride = input.planeSize
                    }
                    // x outer, channel tiles inner: the slice of scratch under one 24-pixel tile
                    // (inPerGroup * k rows) stays in L1 while every output tile reuses it.
                    let groupWeights = packed + g * outPerGroup * ocTileWeights
                    var x0 = 0
                    while x0 < wo {
                        let valid = min(Conv2D.tilePixels, wo - x0)
                        var t0 = 0
                        var wp = groupWeights
                        while t0 < outPerGroup {
                            let tile = min(Conv2D.tileChannels, outPerGroup - t0)
                            let oc = g * outPerGroup + t0
                            let args = TileArgs(src: src + x0, rows: inPerGroup * k, rowStride: rowStride, kw: k, taps: taps,
                                                weights: wp, out: out.plane(oc) + oy * wo + x0, outStride: out.planeSize,
                                                bias: biasValues + oc, relu: relu, valid: valid)
                            switch tile {
                            case 4: convTile(4, args)
                            case 3: convTile(3, args)
                            case 2: convTile(2, args)
                            default: convTile(1, args)
                            }
                            wp += tile * ocTileWeights
                            t0 += tile
                        }
                        x0 += Conv2D.tilePixels
                    }
                }
            }
        }
    }
}

/// Reflection (PyTorch's ReflectionPad: the edge pixel is not repeated), valid for any offset.
@inline(__always)
public func reflect(_ i: Int, _ n: Int) -> Int {
    if n == 1 { return 0 }
    var j = i
    let period = 2 * (n - 1)
    if j < 0 || j >= n {
        j = j % period
        if j < 0 { j += period }
        if j >= n { j = period - j }
    }
    return j
}

/// Writes one reflection-padded input row, split into `stride` phases of `phaseWidth` floats each
/// (phase q holds padded columns q, q+s, q+2s, ...), zero beyond the padded row.
@inline(__always)
func fillPaddedRow(row: UnsafePointer<Float>, width w: Int, pad p: Int, stride s: Int, phaseWidth: Int,
                   into dst: UnsafeMutablePointer<Float>) {
    let padded = w + 2 * p
    if s == 1 {
        if p > 0 && p < w {
            for j in 0..<p { dst[j] = row[p - j]; dst[p + w + j] = row[w - 2 - j] }
        } else if p > 0 {
            for j in 0..<p { dst[j] = row[reflect(j - p, w)]; dst[p + w + j] = row[reflect(w + j, w)] }
        }
        (dst + p).update(from: row, count: w)
        if phaseWidth > padded { (dst + padded).update(repeating: 0, count: phaseWidth - padded) }
        return
    }
    for q in 0..<s {
        let phase = dst + q * phaseWidth
        var j = 0
        var xp = q
        while j < phaseWidth {
            if xp < padded {
                let x = xp - p
                phase[j] = (x >= 0 && x < w) ? row[x] : row[reflect(x, w)]
            } else {
                phase[j] = 0
            }
            j += 1
            xp += s
        }
    }
}

/// Arguments of one micro-kernel call: `rows` input rows (channel x ky) `rowStride` apart,
/// `kw` taps at offsets `taps`, weights in [row][kx][tile] order.
struct TileArgs {
    let src: UnsafePointer<Float>
    let rows: Int
    let rowStride: Int
    let kw: Int
    let taps: UnsafePointer<Int>
    let weights: UnsafePointer<Float>
    let out: UnsafeMutablePointer<Float>
    let outStride: Int
    let bias: UnsafePointer<Float>
    let relu: Bool
    let valid: Int
}

@inline(__always)
func load8(_ p: UnsafePointer<Float>) -> SIMD8<Float> {
    UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
}

@inline(__always)
func store8(_ v: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD8<Float>.self)
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
    var rp = a.src
    let kw = a.kw
    for _ in 0..<a.rows {
        for kx in 0..<kw {
            let p = rp + a.taps[kx]
            let v0 = load8(p), v1 = load8(p + 8), v2 = load8(p + 16)
            let w0 = SIMD8<Float>(repeating: wp[0])
            a00.addProduct(w0, v0); a01.addProduct(w0, v1); a02.addProduct(w0, v2)
            if T > 1 {
                let w1 = SIMD8<Float>(repeating: wp[1])
                a10.addProduct(w1, v0); a11.addProduct(w1, v1); a12.addProduct(w1, v2)
            }
            if T > 2 {
                let w2 = SIMD8<Float>(repeating: wp[2])
                a20.addProduct(w2, v0); a21.addProduct(w2, v1); a22.addProduct(w2, v2)
            }
            if T > 3 {
                let w3 = SIMD8<Float>(repeating: wp[3])
                a30.addProduct(w3, v0); a31.addProduct(w3, v1); a32.addProduct(w3, v2)
            }
            wp += T
        }
        rp += a.rowStride
    }
    storeTileRow(a00, a01, a02, channel: 0, a)
    if T > 1 { storeTileRow(a10, a11, a12, channel: 1, a) }
    if T > 2 { storeTileRow(a20, a21, a22, channel: 2, a) }
    if T > 3 { storeTileRow(a30, a31, a32, channel: 3, a) }
}

@inline(__always)
func storeTileRow(_ v0: SIMD8<Float>, _ v1: SIMD8<Float>, _ v2: SIMD8<Float>, channel t: Int, _ a: TileArgs) {
    let b = SIMD8<Float>(repeating: a.bias[t])
    var r0 = v0 + b, r1 = v1 + b, r2 = v2 + b
    if a.relu {
        let z = SIMD8<Float>()
        r0 = pointwiseMax(r0, z); r1 = pointwiseMax(r1, z); r2 = pointwiseMax(r2, z)
    }
    let dst = a.out + t * a.outStride
    if a.valid == Conv2D.tilePixels {
        store8(r0, dst); store8(r1, dst + 8); store8(r2, dst + 16)
    } else {
        var tmp = (r0, r1, r2)
        withUnsafeBytes(of: &tmp) { raw in
            let f = raw.bindMemory(to: Float.self)
            for i in 0..<a.valid { dst[i] = f[i] }
        }
    }
}
