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
    /// F(4x4,3x3)-transformed weights, when this layer uses Winograd with 4x4 output tiles (the default).
    let winograd4: Winograd4Weights?
    /// Collapsed 2x2 weights for inputs seen through nearest 2x upsampling (see `PolyphaseWeights`),
    /// for dense 3x3 layers narrower than `polyphaseMaxChannels`. At 64 channels Winograd F(4x4) is
    /// faster, at 16 polyphase is (`stylist bench --no-polyphase` compares them; BENCHMARKS.md);
    /// 32 channels are not measured.
    let polyphase: PolyphaseWeights?
    /// The paths this layer may take (fixed when it is built).
    public let options: EngineOptions

    /// Dense 3x3 convs narrower than this (in or out) also get polyphase weights, used instead of
    /// Winograd for nearest-upsampled inputs (2.25x fewer FLOPs at direct-conv speed).
    static let polyphaseMaxChannels = 32

    static let tileChannels = 4
    static let tileVectors = 3
    static let tilePixels = tileVectors * 8
    /// Width of the 3-channel tile (`convTile3x32`).
    static let wideTilePixels = 32

    /// `weight` is OIHW with I = inChannels / groups (PyTorch's layout); `padding` defaults to kernel / 2.
    public init(weight: [Float], bias: [Float], inChannels: Int, outChannels: Int, kernel: Int,
                stride: Int = 1, groups: Int = 1, padding: Int? = nil, activation: Activation = .none,
                options: EngineOptions = EngineOptions()) {
        self.options = options
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
        let pad = padding ?? kernel / 2
        let dense3x3 = kernel == 3 && stride == 1 && groups == 1 && pad == 1
        let winogradEligible = options.winograd && dense3x3 && min(inChannels, outChannels) >= options.winogradMinChannels
        polyphase = options.polyphase && dense3x3 && min(inChannels, outChannels) < Conv2D.polyphaseMaxChannels
            ? PolyphaseWeights(weight: weight, inChannels: inChannels, outChannels: outChannels) : nil
        winograd4 = winogradEligible
            ? Winograd4Weights(weight: weight, inChannels: inChannels, outChannels: outChannels) : nil
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
        winograd4?.deallocate()
        polyphase?.deallocate()
    }

    /// Whole-tensor runs of this layer use Winograd (band runs never do).
    public var usesWinograd: Bool { winograd4 != nil }

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
        guard kernel == 1 && stride == 1 && padding == 0 else { return self(ConvInput(input)) }
        let out = Tensor(channels: outChannels, height: input.height, width: input.width)
        runPointwise(input, into: out)
        return out
    }

    /// A 1x1 convolution is a matrix product over the flattened planes: tiles run along whole
    /// planes (long contiguous streams, one partial tile per plane) instead of row by row.
    func runPointwise(_ input: Tensor, into out: Tensor) {
        let n = input.planeSize
        let tiles = (n + Conv2D.tilePixels - 1) / Conv2D.tilePixels
        let relu = activation == .relu
        // Blocks of 16 tiles (384 pixels) per task. Each tile's inputs are first copied into a
        // contiguous panel (C x 24 floats): read straight from the planes, the C rows are a plane
        // apart, and planes of 64^2, 128^2, ... floats are multiples of 4 KiB, so every row of the
        // reduction maps to the same cache set (measured: 256->256 at 128^2 ran at 27 GFLOP/s per core).
        let offsets = TapOffsets(channels: inPerGroup, channelStride: Conv2D.tilePixels)
        defer { offsets.deallocate() }
        let block = 16
        Parallel.forRanges((tiles + block - 1) / block, minChunk: 1) { range in
          ScratchPool.shared.with(inPerGroup * Conv2D.tilePixels) { panel in
            for b in range {
                for g in 0..<groups {
                    let groupWeights = packed + g * outPerGroup * inPerGroup
                    let src = UnsafePointer(input.plane(g * inPerGroup))
                    for t in (b * block)..<min(tiles, (b + 1) * block) {
                        let x0 = t * Conv2D.tilePixels
                        let valid = min(Conv2D.tilePixels, n - x0)
                        packPanel(src + x0, channels: inPerGroup, stride: n, into: panel)
                        var t0 = 0
                        var wp = groupWeights
                        while t0 < outPerGroup {
                            let tile = min(Conv2D.tileChannels, outPerGroup - t0)
                            let oc = g * outPerGroup + t0
                            let args = TileArgs(src: UnsafePointer(panel), offsets: offsets.pointer, taps: offsets.count, weights: wp, out: out.plane(oc) + x0, outStride: n,
                                                bias: biasValues + oc, relu: relu, valid: valid)
                            convTile(channels: tile, args)
                            wp += tile * inPerGroup
                            t0 += tile
                        }
                    }
                }
            }
          }
        }
    }

    /// Applies the convolution to a (possibly virtually upsampled) input.
    public func callAsFunction(_ input: ConvInput) -> Tensor {
        precondition(input.tensor.channels == inChannels, "conv expects \(inChannels) channels, got \(input.tensor.shapeDescription)")
        let (ho, wo) = outputSize(height: input.height, width: input.width)
        let out = Tensor(channels: outChannels, height: ho, width: wo)
        if let polyphase, input.mode == .nearest2x, input.rowOffset == 0,
           input.fullHeight == input.tensor.height, input.tensor.height >= 2, input.tensor.width >= 2 {
            runPolyphase(input.tensor, polyphase, into: out)
        } else if let winograd4 {
            runWinograd4(input, winograd4, into: out)
        } else if groups > 1 {
            runGroupedPlanes(input, into: out, outputRows: 0..<ho)
        } else {
            run(input, into: out, outputRows: 0..<ho)
        }
        return out
    }

    /// This convolution followed by a 2x2 max pool (ceil mode), as `Ops.maxPool2x2(conv(input))`.
    /// On the F(4x4) path the pool is taken in the output transform and the full-size output is never
    /// written; other paths convolve, then pool.
    public func pooled(_ input: Tensor) -> Tensor {
        guard let winograd4, input.channels == inChannels else { return Ops.maxPool2x2(self(input)) }
        let out = Tensor(channels: outChannels, height: (input.height + 1) / 2, width: (input.width + 1) / 2)
        runWinograd4(ConvInput(input), winograd4, into: out, pooled: true)
        return out
    }

    /// Geometry shared by the row and plane paths: padded rows are split into `stride` phases of
    /// `phaseWidth` floats, wide enough that every tap of every 24-pixel tile is readable.
    private func phaseGeometry(outputWidth wo: Int) -> (phaseWidth: Int, columns: [Int]) {
        let tiles = (wo + Conv2D.tilePixels - 1) / Conv2D.tilePixels
        let wideTiles = (wo + Conv2D.wideTilePixels - 1) / Conv2D.wideTilePixels
        let phaseWidth = max(tiles * Conv2D.tilePixels, wideTiles * Conv2D.wideTilePixels) + (kernel - 1) / stride + 16
        return (phaseWidth, (0..<kernel).map { kx in (kx % stride) * phaseWidth + kx / stride })
    }

    /// Row path (dense convolutions): for each output row, the `kernel` input rows of every input
    /// channel are fetched, padded and phase-split into a per-thread scratch, then all output tiles run.
    /// `outputRows` are logical output rows; row `outputRowOffset` of the logical output is row 0 of `out`
    /// (band processing computes a slice of a taller image).
    public func run(_ input: ConvInput, into out: Tensor, outputRows: Range<Int>, outputRowOffset: Int = 0) {
        let wo = out.width
        let k = kernel, s = stride, p = padding
        let (phaseWidth, columns) = phaseGeometry(outputWidth: wo)
        let rowLen = s * phaseWidth
        // Stride 1, one group: the scratch is a ring of `k` padded rows per channel, so each input row
        // is fetched and padded once, not once per output row that reads it; output row y finds
        // padded row y + ky in slot (y + ky) % k, through the offset table of rotation y % k.
        let ring = s == 1 && groups == 1
        let rotations = (ring ? 0..<k : 0..<1).map { r in
            TapOffsets(channels: inPerGroup, channelStride: k * rowLen, kh: k, rowStride: rowLen, columns: columns, rowSlot: { ky in (r + ky) % k })
        }
        defer { rotations.forEach { $0.deallocate() } }
        let scratchCount = inPerGroup * k * rowLen
        let relu = activation == .relu
        let ocTileWeights = inPerGroup * k * k
        let logicalHeight = input.height, logicalWidth = input.width

        Parallel.forRanges(outputRows.count, minChunk: 1) { chunk in
          ScratchPool.shared.with(scratchCount + input.rowScratchCount) { scratch in
            let tmp = scratch + scratchCount
            var nextPadded = Int.min                  // ring: first padded row not yet in the scratch
            for i in chunk {
                let y = outputRows.lowerBound + i
                let oy = y - outputRowOffset
                for g in 0..<groups {
                    // Padded rows y*s ..< y*s + k; the ring already holds those below `nextPadded`.
                    for ky in 0..<k where !ring || y + ky >= nextPadded {
                        let logical = reflect(y * s + ky - p, logicalHeight)
                        let slot = ring ? (y + ky) % k : ky
                        for ic in 0..<inPerGroup {
                            let row = input.row(channel: g * inPerGroup + ic, logicalRow: logical, scratch: tmp)
                            fillPaddedRow(row: row, width: logicalWidth, pad: p, stride: s, phaseWidth: phaseWidth,
                                          into: scratch + (ic * k + slot) * rowLen)
                        }
                    }
                    nextPadded = y + k
                    // x outer, channel tiles inner: the slice of scratch under one 24-pixel tile
                    // (inPerGroup * k rows) stays in L1 while every output tile reuses it.
                    runTiles(src: UnsafePointer(scratch), offsets: rotations[ring ? y % k : 0],
                             group: g, out: out, outRow: oy, relu: relu, ocTileWeights: ocTileWeights)
                }
            }
          }
        }
    }

    /// Plane path (grouped and depthwise convolutions, few input channels per group): each group's
    /// input planes are padded and phase-split once into a per-thread scratch, then all of the group's
    /// output rows run from it. Rebuilding `kernel` rows per output row would cost more than the math.
    /// Computes logical output rows `outputRows` into `out`, whose row 0 is logical row `outputRowOffset`.
    public func runGroupedPlanes(_ input: ConvInput, into out: Tensor, outputRows: Range<Int>, outputRowOffset: Int = 0) {
        let wo = out.width
        let k = kernel, s = stride, p = padding
        let (phaseWidth, columns) = phaseGeometry(outputWidth: wo)
        let rowLen = s * phaseWidth
        let firstPadded = outputRows.lowerBound * s                 // padded-row coordinates
        let paddedRows = (outputRows.count - 1) * s + k
        let planeLen = paddedRows * rowLen
        let offsets = TapOffsets(channels: inPerGroup, channelStride: planeLen, kh: k, rowStride: rowLen, columns: columns)
        defer { offsets.deallocate() }
        let relu = activation == .relu
        let ocTileWeights = inPerGroup * k * k
        let logicalHeight = input.height, logicalWidth = input.width

        Parallel.forRanges(groups, minChunk: 1) { range in
          ScratchPool.shared.with(inPerGroup * planeLen + input.rowScratchCount) { scratch in
            let tmp = scratch + inPerGroup * planeLen
            for g in range {
                for ic in 0..<inPerGroup {
                    for r in 0..<paddedRows {
                        let logical = reflect(firstPadded + r - p, logicalHeight)
                        let row = input.row(channel: g * inPerGroup + ic, logicalRow: logical, scratch: tmp)
                        fillPaddedRow(row: row, width: logicalWidth, pad: p, stride: s, phaseWidth: phaseWidth,
                                      into: scratch + ic * planeLen + r * rowLen)
                    }
                }
                for (i, y) in outputRows.enumerated() {
                    runTiles(src: UnsafePointer(scratch + i * s * rowLen), offsets: offsets,
                             group: g, out: out, outRow: y - outputRowOffset, relu: relu, ocTileWeights: ocTileWeights)
                }
            }
          }
        }
    }

    /// Logical output rows `rows` of this convolution as a band tensor (row 0 = `rows.lowerBound`).
    /// `input` may itself be a band; it must hold `inputRows(for: rows, ...)`.
    public func band(_ input: ConvInput, rows: Range<Int>) -> Tensor {
        let wo = outputSize(height: input.height, width: input.width).width
        let out = Tensor(channels: outChannels, height: rows.count, width: wo)
        if kernel == 1 && stride == 1 && padding == 0 && input.mode == .identity {
            precondition(input.rowOffset <= rows.lowerBound && rows.upperBound <= input.rowOffset + input.tensor.height, "pointwise band lacks rows")
            if input.rowOffset == rows.lowerBound && input.tensor.height == rows.count {
                runPointwise(input.tensor, into: out)
            } else {
                run(input, into: out, outputRows: rows, outputRowOffset: rows.lowerBound)
            }
        } else if groups > 1 {
            runGroupedPlanes(input, into: out, outputRows: rows, outputRowOffset: rows.lowerBound)
        } else {
            run(input, into: out, outputRows: rows, outputRowOffset: rows.lowerBound)
        }
        return out
    }

    /// The logical input rows (of an input `inputHeight` rows tall) that output rows `rows` read,
    /// reflection included.
    public func inputRows(for rows: Range<Int>, inputHeight: Int) -> Range<Int> {
        let lo = rows.lowerBound * stride - padding
        let hi = (rows.upperBound - 1) * stride - padding + kernel
        // Reflection at an edge reads rows within `padding` of it, which [0, hi) / [lo, H) already hold.
        return max(0, lo)..<min(inputHeight, max(hi, padding + 1))
    }

    /// All output tiles of one group for one output row, x tiles outer.
    @inline(__always)
    private func runTiles(src: UnsafePointer<Float>, offsets: TapOffsets,
                          group g: Int, out: Tensor, outRow oy: Int, relu: Bool, ocTileWeights: Int) {
        let wo = out.width
        let groupWeights = packed + g * outPerGroup * ocTileWeights
        if outPerGroup == 3 {
            // Three output channels (an RGB output layer): 3 x 32-pixel tiles keep twelve accumulators
            // busy where 3 x 24 would use nine.
            var x0 = 0
            while x0 < wo {
                let oc = g * outPerGroup
                convTile3x32(TileArgs(src: src + x0, offsets: offsets.pointer, taps: offsets.count, weights: groupWeights,
                                      out: out.plane(oc) + oy * wo + x0, outStride: out.planeSize, bias: biasValues + oc,
                                      relu: relu, valid: min(Conv2D.wideTilePixels, wo - x0)))
                x0 += Conv2D.wideTilePixels
            }
            return
        }
        var x0 = 0
        while x0 < wo {
            let valid = min(Conv2D.tilePixels, wo - x0)
            var t0 = 0
            var wp = groupWeights
            while t0 < outPerGroup {
                let tile = min(Conv2D.tileChannels, outPerGroup - t0)
                let oc = g * outPerGroup + t0
                let args = TileArgs(src: src + x0, offsets: offsets.pointer, taps: offsets.count, weights: wp, out: out.plane(oc) + oy * wo + x0, outStride: out.planeSize,
                                    bias: biasValues + oc, relu: relu, valid: valid)
                convTile(channels: tile, args)
                wp += tile * ocTileWeights
                t0 += tile
            }
            x0 += Conv2D.tilePixels
        }
    }
}

/// What a convolution reads: a tensor, or a tensor seen through 2x upsampling that is computed a
/// row at a time as the convolution asks for it, so the upsampled tensor is never materialised.
/// `rowOffset` lets the tensor be a horizontal band of a taller image of `fullHeight` rows.
public struct ConvInput {
    /// How the tensor is seen.
    public enum Mode { case identity, nearest2x, bilinear2x }
    public let tensor: Tensor
    public let mode: Mode
    public let rowOffset: Int
    public let fullHeight: Int

    public init(_ tensor: Tensor, mode: Mode = .identity, rowOffset: Int = 0, fullHeight: Int? = nil) {
        self.tensor = tensor
        self.mode = mode
        self.rowOffset = rowOffset
        self.fullHeight = fullHeight ?? tensor.height
    }

    var scale: Int { mode == .identity ? 1 : 2 }
    /// Logical (upsampled) height of the whole image.
    public var height: Int { fullHeight * scale }
    /// Logical width.
    public var width: Int { tensor.width * scale }
    /// Source-tensor rows that logical rows `rows` are computed from.
    public func sourceRows(for rows: Range<Int>) -> Range<Int> {
        switch mode {
        case .identity: return rows
        case .nearest2x: return rows.lowerBound / 2..<((rows.upperBound - 1) / 2 + 1)
        case .bilinear2x: return max(0, rows.lowerBound / 2 - 1)..<min(fullHeight, (rows.upperBound - 1) / 2 + 2)
        }
    }

    /// Floats of per-thread scratch `row` may use.
    var rowScratchCount: Int { 3 * tensor.width + 16 }

    /// Logical row `r` of channel `c`: a pointer into the tensor, or into `scratch` when computed.
    @inline(__always)
    func row(channel c: Int, logicalRow r: Int, scratch: UnsafeMutablePointer<Float>) -> UnsafePointer<Float> {
        let w = tensor.width
        let plane = tensor.plane(c)
        func sourceRow(_ sr: Int) -> UnsafeMutablePointer<Float> {
            let local = sr - rowOffset
            precondition(local >= 0 && local < tensor.height, "conv band lacks input row \(sr)")
            return plane + local * w
        }
        switch mode {
        case .identity:
            return UnsafePointer(sourceRow(r))
        case .nearest2x:
            let src = sourceRow(r / 2)
            for i in 0..<w { let v = src[i]; scratch[2 * i] = v; scratch[2 * i + 1] = v }
            return UnsafePointer(scratch)
        case .bilinear2x:
            // Half-pixel centres, edges clamped: out[2i] = .25 x[i-1] + .75 x[i], out[2i+1] = .75 x[i] + .25 x[i+1],
            // vertically first (one blended source row), then horizontally.
            let sr = r / 2
            let sn = (r % 2 == 0) ? max(sr - 1, 0) : min(sr + 1, fullHeight - 1)
            let a = sourceRow(sr), b = sourceRow(sn)
            let v = scratch + 2 * w + 8
            var i = 0
            let q = SIMD8<Float>(repeating: 0.25), t = SIMD8<Float>(repeating: 0.75)
            while i + 8 <= w { var x = load8(a + i) * t; madd(&x, q, load8(b + i)); store8(x, v + i); i += 8 }
            while i < w { v[i] = 0.75 * a[i] + 0.25 * b[i]; i += 1 }
            scratch[0] = v[0]
            for i in 0..<(w - 1) {
                let c0 = v[i], c1 = v[i + 1]
                scratch[2 * i + 1] = 0.75 * c0 + 0.25 * c1
                scratch[2 * i + 2] = 0.25 * c0 + 0.75 * c1
            }
            scratch[2 * w - 1] = v[w - 1]
            return UnsafePointer(scratch)
        }
    }
}

/// Copies 24 consecutive values of each of `channels` rows (`stride` floats apart) into a contiguous
/// panel, so the micro-kernel's reduction reads memory sequentially. Reads up to 24 values past a
/// short last tile: tensors keep 64 floats of slack after their last plane.
@inline(__always)
func packPanel(_ src: UnsafePointer<Float>, channels: Int, stride: Int, into panel: UnsafeMutablePointer<Float>) {
    var s = src, d = panel
    for _ in 0..<channels {
        store8(load8(s), d); store8(load8(s + 8), d + 8); store8(load8(s + 16), d + 16)
        s += stride
        d += Conv2D.tilePixels
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
    var j0 = 0
    if s == 2 {
        // Interior blocks: 16 consecutive padded columns de-interleave into 8 per phase.
        let even = dst, odd = dst + phaseWidth
        while 2 * j0 < p { j0 += 1 }
        while 2 * j0 + 16 <= p + w && j0 + 8 <= phaseWidth {
            let v = UnsafeRawPointer(row + (2 * j0 - p)).loadUnaligned(as: SIMD16<Float>.self)
            store8(v.evenHalf, even + j0)
            store8(v.oddHalf, odd + j0)
            j0 += 8
        }
        fillPhasesScalar(row: row, width: w, pad: p, stride: s, phaseWidth: phaseWidth, into: dst, from: 0, to: min(p / 2 + 1, phaseWidth))
        fillPhasesScalar(row: row, width: w, pad: p, stride: s, phaseWidth: phaseWidth, into: dst, from: j0, to: phaseWidth)
        return
    }
    if s == 4 {
        // Interior blocks: 32 consecutive padded columns de-interleave into 8 per phase.
        while 4 * j0 < p { j0 += 1 }
        while 4 * j0 + 32 <= p + w && j0 + 8 <= phaseWidth {
            let v = UnsafeRawPointer(row + (4 * j0 - p)).loadUnaligned(as: SIMD32<Float>.self)
            let even = v.evenHalf, odd = v.oddHalf
            store8(even.evenHalf, dst + j0)
            store8(odd.evenHalf, dst + phaseWidth + j0)
            store8(even.oddHalf, dst + 2 * phaseWidth + j0)
            store8(odd.oddHalf, dst + 3 * phaseWidth + j0)
            j0 += 8
        }
        fillPhasesScalar(row: row, width: w, pad: p, stride: s, phaseWidth: phaseWidth, into: dst, from: 0, to: min(p / 4 + 1, phaseWidth))
        fillPhasesScalar(row: row, width: w, pad: p, stride: s, phaseWidth: phaseWidth, into: dst, from: j0, to: phaseWidth)
        return
    }
    fillPhasesScalar(row: row, width: w, pad: p, stride: s, phaseWidth: phaseWidth, into: dst, from: 0, to: phaseWidth)
}

/// Phase-split columns j in from..<to of a reflection-padded row, one element at a time.
@inline(__always)
func fillPhasesScalar(row: UnsafePointer<Float>, width w: Int, pad p: Int, stride s: Int, phaseWidth: Int,
                      into dst: UnsafeMutablePointer<Float>, from: Int, to: Int) {
    let padded = w + 2 * p
    for q in 0..<s {
        let phase = dst + q * phaseWidth
        // Columns j with q + j*s < padded hold data; the rest of the phase is zero (a fill, not a
        // branch per element: at 132 wide that tail was most of a Winograd F(4x4) row's fill).
        let dataEnd = min(to, max(from, (padded - q + s - 1) / s))
        var j = from
        var xp = q + from * s
        while j < dataEnd {
            let x = xp - p
            phase[j] = (x >= 0 && x < w) ? row[x] : row[reflect(x, w)]
            j += 1
            xp += s
        }
        if dataEnd < to { (phase + dataEnd).update(repeating: 0, count: to - dataEnd) }
    }
}

/// A zero bias for a whole tile, shared by the Winograd matrix products.
let zeroBias: UnsafePointer<Float> = {
    let p = UnsafeMutablePointer<Float>.allocate(capacity: Conv2D.tileChannels)
    p.initialize(repeating: 0, count: Conv2D.tileChannels)
    return UnsafePointer(p)
}()

/// Every tap's offset from a tile's first input value, in the packed weights' order
/// ([channel][ky][kx]): the micro-kernel runs one flat loop over them. With nested channel/row/
/// column loops of 3 iterations, the kernel lost a third of its speed when the machine was busy
/// (16->16 at 512^2: 128 GFLOP/s in a quiet minute, 77 in a busy one, while Winograd's long loops
/// lost 10%), which points at the short loops' branches; the flat loop was 8-15% faster in A/B runs.
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

/// Arguments of one micro-kernel call: `taps` inputs at `offsets` from `src`, each with a weight per
/// output channel ([tap][tile] order); the tile is 24 pixels wide (32 for `convTile3x32`).
struct TileArgs {
    let src: UnsafePointer<Float>
    let offsets: UnsafePointer<Int>
    let taps: Int
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

/// Bias, activation and store of a tile's accumulators (written out per channel: the optimizer
/// declined to inline a per-channel helper, and the calls passed the accumulators through memory).
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
/// accumulators, 4 loads and 3 broadcasts per 12 FMAs (the 3 x 24 tile did 9 FMAs for 6 loads).
@inline(never)
func convTile3x32(_ a: TileArgs) {
    var a00 = SIMD8<Float>(), a01 = SIMD8<Float>(), a02 = SIMD8<Float>(), a03 = SIMD8<Float>()
    var a10 = SIMD8<Float>(), a11 = SIMD8<Float>(), a12 = SIMD8<Float>(), a13 = SIMD8<Float>()
    var a20 = SIMD8<Float>(), a21 = SIMD8<Float>(), a22 = SIMD8<Float>(), a23 = SIMD8<Float>()
    var wp = a.weights
    for t in 0..<a.taps {
        // Weights first, then one input vector at a time: 12 accumulators + 3 weights + 1 input
        // fill the 16 registers exactly (four inputs held at once spilled two accumulators).
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
/// out-of-line, lane-by-lane loop with NaN checks (it was 16% of a cd16x run); this keeps NaN lanes.
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
