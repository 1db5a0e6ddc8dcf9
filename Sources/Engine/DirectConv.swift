import EngineKernels512

/// The direct paths of `Conv2D`, used wherever Winograd and polyphase are not: a matrix product
/// for 1x1 layers, the row path for dense layers, the plane path for grouped ones. Each runs the
/// micro-kernel over padded rows in per-thread scratch, so bands of a taller image work the same way.
extension Conv2D {
    /// A 1x1 convolution is a matrix product over the flattened planes: tiles run along whole
    /// planes (long contiguous streams, one partial tile per plane) instead of row by row.
    func runPointwise(_ input: Tensor, into out: Tensor) {
        let n = input.planeSize
        let tp = kernels.tilePixels
        let tiles = (n + tp - 1) / tp
        let relu = activation == .relu
        // Blocks of 384 pixels (16 AVX2 tiles, 8 AVX-512 ones) per task. Each tile's inputs are first
        // copied into a contiguous panel (C x tile floats): read straight from the planes, the C rows
        // are a plane apart, and planes of 64^2, 128^2, ... floats are multiples of 4 KiB, so every row
        // of the reduction would map to the same cache set and evict the others (BENCHMARKS.md, "Engine techniques").
        let offsets = TapOffsets(channels: inPerGroup, channelStride: tp)
        defer { offsets.deallocate() }
        let block = 384 / tp
        Parallel.forRanges((tiles + block - 1) / block, minChunk: 1) { range in
          ScratchPool.shared.with(inPerGroup * tp) { panel in
            for b in range {
                for g in 0..<groups {
                    let groupWeights = packed + g * outPerGroup * inPerGroup
                    let src = UnsafePointer(input.plane(g * inPerGroup))
                    for t in (b * block)..<min(tiles, (b + 1) * block) {
                        let x0 = t * tp
                        let valid = min(tp, n - x0)
                        packPanel(src + x0, channels: inPerGroup, stride: n, width: tp, into: panel)
                        kernels.allChannels(outPerGroup, weightsPerChannel: inPerGroup,
                                            TileArgs(src: UnsafePointer(panel), offsets: offsets.pointer, taps: offsets.count, weights: groupWeights,
                                                     out: out.plane(g * outPerGroup) + x0, outStride: n, bias: biasValues + g * outPerGroup,
                                                     relu: relu, valid: valid))
                    }
                }
            }
          }
        }
    }

    /// Geometry shared by the row and plane paths: padded rows are split into `stride` phases of
    /// `phaseWidth` floats, wide enough that every tap of every tile of the layer's kernels is readable.
    private func phaseGeometry(outputWidth wo: Int) -> (phaseWidth: Int, columns: [Int]) {
        let tp = kernels.tilePixels, wide = kernels.wideTilePixels
        let tiles = (wo + tp - 1) / tp
        let wideTiles = (wo + wide - 1) / wide
        let phaseWidth = max(tiles * tp, wideTiles * wide) + (kernel - 1) / stride + 16
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
                // The input rows that output row y + 2 adds load while this row runs.
                let ahead = (y + 2) * s - p
                input.prefetch(logicalRows: (ring ? ahead + k - 1 : ahead)..<(ahead + k))
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
                    // x outer, channel tiles inner: the slice of scratch under one tile
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

    /// All output tiles of one group for one output row, x tiles outer.
    @inline(__always)
    private func runTiles(src: UnsafePointer<Float>, offsets: TapOffsets,
                          group g: Int, out: Tensor, outRow oy: Int, relu: Bool, ocTileWeights: Int) {
        let wo = out.width
        let groupWeights = packed + g * outPerGroup * ocTileWeights
        if outPerGroup == 3 {
            // Three output channels (an RGB output layer): 3 x 32-pixel tiles (3 x 64 with AVX-512)
            // keep twelve accumulators busy where 3 x 24 would use nine.
            let wide = kernels.wideTilePixels
            var x0 = 0
            while x0 < wo {
                let oc = g * outPerGroup
                kernels.tile3(TileArgs(src: src + x0, offsets: offsets.pointer, taps: offsets.count, weights: groupWeights,
                                       out: out.plane(oc) + oy * wo + x0, outStride: out.planeSize, bias: biasValues + oc,
                                       relu: relu, valid: min(wide, wo - x0)))
                x0 += wide
            }
            return
        }
        let tp = kernels.tilePixels
        var x0 = 0
        while x0 < wo {
            kernels.allChannels(outPerGroup, weightsPerChannel: ocTileWeights,
                                TileArgs(src: src + x0, offsets: offsets.pointer, taps: offsets.count, weights: groupWeights,
                                         out: out.plane(g * outPerGroup) + oy * wo + x0, outStride: out.planeSize,
                                         bias: biasValues + g * outPerGroup, relu: relu, valid: min(tp, wo - x0)))
            x0 += tp
        }
    }
}
