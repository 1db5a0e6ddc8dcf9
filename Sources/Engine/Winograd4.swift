import CEngineSIMD
import EngineKernels512

/// Winograd F(4x4, 3x3) for dense 3x3 convolutions (stride 1, reflection pad 1): 36 multiplies per
/// 4x4 output tile instead of 144 (4x fewer than direct), with the standard interpolation points
/// 0, +-1, +-2 (Lavin & Gray 2016): input transform over 8 tiles per SIMD op, 36 matrix products
/// on the conv micro-kernel, output
/// transform with bias and activation. Transforms of the weights are computed in double precision.
struct Winograd4Weights {
    /// U[xi] packed per xi (36 of them) as [oc tile of 4][ic][tile].
    let packed: UnsafeMutablePointer<Float>

    /// U = G g G^T, G = [[1/4,0,0],[-1/6,-1/6,-1/6],[-1/6,1/6,-1/6],[1/24,1/12,1/6],[1/24,-1/12,1/6],[0,0,1]].
    init(weight: [Float], inChannels c: Int, outChannels oc: Int) {
        let g: [[Double]] = [[0.25, 0, 0], [-1.0 / 6, -1.0 / 6, -1.0 / 6], [-1.0 / 6, 1.0 / 6, -1.0 / 6],
                             [1.0 / 24, 1.0 / 12, 1.0 / 6], [1.0 / 24, -1.0 / 12, 1.0 / 6], [0, 0, 1]]
        packed = .allocate(capacity: 36 * oc * c)
        for o in 0..<oc {
            for i in 0..<c {
                let w = (0..<9).map { Double(weight[(o * c + i) * 9 + $0]) }
                var gw = [Double](repeating: 0, count: 18)          // G w: 6 x 3
                for r in 0..<6 { for col in 0..<3 { for k in 0..<3 { gw[r * 3 + col] += g[r][k] * w[k * 3 + col] } } }
                let t0 = o / Conv2D.tileChannels * Conv2D.tileChannels
                let tile = min(Conv2D.tileChannels, oc - t0)
                for r in 0..<6 {
                    for col in 0..<6 {                              // (G w) G^T
                        var u = 0.0
                        for k in 0..<3 { u += gw[r * 3 + k] * g[col][k] }
                        packed[(r * 6 + col) * oc * c + t0 * c + i * tile + (o - t0)] = Float(u)
                    }
                }
            }
        }
    }

    func deallocate() { packed.deallocate() }
}

extension Conv2D {
    /// Runs this (dense 3x3, stride 1, pad 1) convolution with Winograd F(4x4, 3x3). With `pooled`,
    /// `out` is the 2x2 max pool (ceil mode) of the convolution, taken in the output transform: each
    /// 4x4 output tile holds four whole pooling windows, so the full-size output is never written.
    func runWinograd4(_ input: ConvInput, _ wg: Winograd4Weights, into out: Tensor, pooled: Bool = false) {
        let h = input.height, w = input.width
        let c = inChannels, oc = outChannels
        let tilesX = (w + 3) / 4, tilesY = (h + 3) / 4
        let rowTiles = (tilesX + 7) / 8 * 8
        // A tile takes 36 floats of V per input channel and 36 of M per output channel: a task
        // takes the tiles that fill `winogradTaskBytes`, and at least 144 (six 24-tile blocks)
        // whatever the channel count: each of the 36 weight matrices is streamed once per block,
        // so wide layers need long tasks to reuse it (`stylist bench --conv 256,256,132 --conv-path
        // f4` shows it). Narrow layers keep whole rows too, though that can overfill the L2: cut
        // into column chunks, each input row is read as short streams, which the prefetcher serves
        // worse than whole rows (both in BENCHMARKS.md, "Engine techniques").
        let target = max(144, options.winogradTaskBytes / (36 * 4 * max(1, c + oc)))
        let chunk = min(rowTiles, max(8, target / 8 * 8))
        let columnChunks = (rowTiles + chunk - 1) / chunk
        let rowsWanted = max(1, min(tilesY, target / max(1, min(chunk, tilesX))))
        // Even out the row blocks (17 tile rows as 6+6+5, not 8+8+1), with at least two tasks per
        // thread when the image has the rows for it, so neither core idles at the end of a layer.
        let rowBlocks = max((tilesY + rowsWanted - 1) / rowsWanted,
                            min(tilesY, (2 * Parallel.threadCount + columnChunks - 1) / columnChunks))
        let tileRowsPerTask = (tilesY + rowBlocks - 1) / rowBlocks
        // Tiles are stored row after row with no padding to a multiple of 8 (padded, 33 tiles per row
        // at 132^2 would be computed as 40): a row's last 8-tile group spills into the next row's
        // slots, which that row then overwrites; the last row's spill lands in the slack.
        let n = tileRowsPerTask * min(chunk, tilesX)
        let tp = kernels.tilePixels
        // An odd number of 8-float groups: V's and M's 36 planes (c or oc rows of nPad apart) then
        // start on different cache sets. With nPad a multiple of 16 floats and 16 channels, all 36
        // would map to one L1 set and evict each other as the transforms write and read them.
        let nPadEven = (n + 8 + tp - 1) / tp * tp + 8
        let nPad = nPadEven / 8 % 2 == 0 ? nPadEven + 8 : nPadEven
        let phaseWidth = rowTiles + 16
        let vCount = 36 * c * nPad, mCount = 36 * oc * nPad
        let offsets = TapOffsets(channels: c, channelStride: nPad)   // V's rows, for every task's products
        defer { offsets.deallocate() }
        let zeroBias = UnsafeMutablePointer<Float>.allocate(capacity: oc)  // the products add no bias
        zeroBias.initialize(repeating: 0, count: oc)
        defer { zeroBias.deallocate() }
        let rowsCount = 6 * 4 * phaseWidth
        let tasks = (tilesY + tileRowsPerTask - 1) / tileRowsPerTask * columnChunks
        let relu = activation == .relu

        Parallel.forRanges(tasks, minChunk: 1) { range in
          ScratchPool.shared.with(vCount + mCount + rowsCount + input.rowScratchCount + 64 + 8 * 40) { scratch in
            // vBuf, mBuf, rows and vectors start at multiples of 8 floats (32 bytes) from a 64-byte aligned base.
            let vBuf = scratch, mBuf = scratch + vCount, rows = mBuf + mCount
            // 40 vectors for the transforms' intermediate values (withUnsafeTemporaryAllocation
            // moves anything over 1 KB to the heap: a malloc per 8 tiles).
            let vectors = UnsafeMutableRawPointer(rows + rowsCount).bindMemory(to: SIMD8<Float>.self, capacity: 40)
            let tmp = rows + rowsCount + 8 * 40
            for task in range {
                let ty0 = task / columnChunks * tileRowsPerTask
                let tx0 = task % columnChunks * chunk
                let ncols = min(chunk, tilesX - tx0)               // real tiles in this chunk of a row
                let nty = min(tileRowsPerTask, tilesY - ty0)
                // Phase columns the input transform reads: tile t reads columns t and t + 1, 8 tiles at a time.
                let filled = tx0..<min(phaseWidth, tx0 + (ncols + 7) / 8 * 8 + 8)
                // The next task of this range starts lower down: its input rows load while this one runs.
                let nextTy0 = (task + 1) / columnChunks * tileRowsPerTask
                if task + 1 < range.upperBound && nextTy0 != ty0 {
                    input.prefetch(logicalRows: (4 * nextTy0 - 1)..<(4 * min(tilesY, nextTy0 + tileRowsPerTask) + 2))
                }
                for ic in 0..<c {
                    for lr in 0..<nty {
                        let ty = ty0 + lr
                        // Tile row ty reads input rows 4ty-1 ... 4ty+4; its first two are the previous tile
                        // row's last two. The six slots are a ring: row i sits in slot (first + i) % 6, so
                        // only the four new rows are filled.
                        let first = 4 * lr % 6
                        for i in (lr == 0 ? 0 : 2)..<6 {
                            let src = input.row(channel: ic, logicalRow: reflect(4 * ty - 1 + i, h), scratch: tmp)
                            fillPaddedRow(row: src, width: w, pad: 1, stride: 4, phaseWidth: phaseWidth, columns: filled,
                                          into: rows + (first + i) % 6 * 4 * phaseWidth)
                        }
                        var t0 = 0
                        while t0 < ncols {
                            transformInputTiles4(rows: rows, first: first, phaseWidth: phaseWidth, t0: tx0 + t0, temp: vectors,
                                                 into: vBuf + ic * nPad + lr * ncols + t0, xiStride: c * nPad)
                            t0 += 8
                        }
                    }
                }
                winogradProducts(points: 36, u: UnsafePointer(wg.packed), v: UnsafePointer(vBuf), m: mBuf,
                                 c: c, oc: oc, stride: nPad, tiles: nty * ncols, offsets: offsets, kernels: kernels, zeroBias: UnsafePointer(zeroBias))
                for o in 0..<oc {
                    let bias = SIMD8<Float>(repeating: biasValues[o])
                    for lr in 0..<nty {
                        let y0 = 4 * (ty0 + lr)
                        var t0 = 0
                        while t0 < ncols {
                            let m = UnsafePointer(mBuf + o * nPad + lr * ncols + t0)
                            if pooled {
                                transformOutputTiles4Pooled(m, xiStride: oc * nPad, bias: bias, relu: relu, temp: vectors,
                                                            plane: out.plane(o), y0: y0, x0: 4 * (tx0 + t0), height: h, width: w)
                            } else {
                                transformOutputTiles4(m, xiStride: oc * nPad, bias: bias, relu: relu, temp: vectors,
                                                      plane: out.plane(o), y0: y0, x0: 4 * (tx0 + t0), height: h, width: w)
                            }
                            t0 += 8
                        }
                    }
                }
            }
          }
        }
    }
}

/// B^T row combination of 6 values: [4,0,-5,0,1,0], [0,-4,-4,1,1,0], [0,4,-4,-1,1,0],
/// [0,-2,-1,2,1,0], [0,2,-1,-2,1,0], [0,4,0,-5,0,1].
@inline(__always)
func winogradBT(_ d0: SIMD8<Float>, _ d1: SIMD8<Float>, _ d2: SIMD8<Float>, _ d3: SIMD8<Float>, _ d4: SIMD8<Float>, _ d5: SIMD8<Float>)
    -> (SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>) {
    let four = SIMD8<Float>(repeating: 4), five = SIMD8<Float>(repeating: 5), two = SIMD8<Float>(repeating: 2)
    let a = d4 - four * d2              // shared: d4 - 4 d2
    let b = d3 - four * d1              // d3 - 4 d1
    let e = d4 - d2
    let f = two * (d3 - d1)
    return (four * d0 - five * d2 + d4, a + b, a - b, e + f, e - f, four * d1 - five * d3 + d5)
}

/// V = B^T d B for 8 consecutive 6x6 input tiles; `rows` holds 6 padded rows split into 4 phases,
/// row i in slot (first + i) % 6.
@inline(__always)
func transformInputTiles4(rows: UnsafePointer<Float>, first: Int, phaseWidth: Int, t0: Int, temp hz: UnsafeMutablePointer<SIMD8<Float>>,
                          into v: UnsafeMutablePointer<Float>, xiStride: Int) {
    // Horizontal: tile t reads padded columns 4t..4t+5 = phases 0..3 at t, phases 0..1 at t+1.
    do {
        for i in 0..<6 {
            let p = rows + (first + i) % 6 * 4 * phaseWidth + t0
            let r = winogradBT(load8(p), load8(p + phaseWidth), load8(p + 2 * phaseWidth), load8(p + 3 * phaseWidth),
                               load8(p + 1), load8(p + phaseWidth + 1))
            hz[i * 6] = r.0; hz[i * 6 + 1] = r.1; hz[i * 6 + 2] = r.2; hz[i * 6 + 3] = r.3; hz[i * 6 + 4] = r.4; hz[i * 6 + 5] = r.5
        }
        for j in 0..<6 {
            let r = winogradBT(hz[j], hz[6 + j], hz[12 + j], hz[18 + j], hz[24 + j], hz[30 + j])
            store8(r.0, v + (0 * 6 + j) * xiStride); store8(r.1, v + (1 * 6 + j) * xiStride)
            store8(r.2, v + (2 * 6 + j) * xiStride); store8(r.3, v + (3 * 6 + j) * xiStride)
            store8(r.4, v + (4 * 6 + j) * xiStride); store8(r.5, v + (5 * 6 + j) * xiStride)
        }
    }
}

/// A^T row combination of 6 values: [1,1,1,1,1,0], [0,1,-1,2,-2,0], [0,1,1,4,4,0], [0,1,-1,8,-8,1].
@inline(__always)
func winogradAT(_ m0: SIMD8<Float>, _ m1: SIMD8<Float>, _ m2: SIMD8<Float>, _ m3: SIMD8<Float>, _ m4: SIMD8<Float>, _ m5: SIMD8<Float>)
    -> (SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>) {
    let sp = m1 + m2, sm = m1 - m2, tp = m3 + m4, tm = m3 - m4
    let two = SIMD8<Float>(repeating: 2), four = SIMD8<Float>(repeating: 4), eight = SIMD8<Float>(repeating: 8)
    return (m0 + sp + tp, sm + two * tm, sp + four * tp, sm + eight * tm + m5)
}

/// Y = A^T M A for 8 tiles, plus bias and activation, into `out[r * 4 + c]` (row r, column c of
/// each tile, one tile per lane); `cols` is scratch for the column-combined rows of M.
@inline(__always)
func outputTiles4(_ m: UnsafePointer<Float>, xiStride: Int, bias: SIMD8<Float>, relu: Bool,
                  cols: UnsafeMutablePointer<SIMD8<Float>>, out: UnsafeMutablePointer<SIMD8<Float>>) {
    for i in 0..<6 {
        let p = m + i * 6 * xiStride
        let r = winogradAT(load8(p), load8(p + xiStride), load8(p + 2 * xiStride), load8(p + 3 * xiStride),
                           load8(p + 4 * xiStride), load8(p + 5 * xiStride))
        cols[i * 4] = r.0; cols[i * 4 + 1] = r.1; cols[i * 4 + 2] = r.2; cols[i * 4 + 3] = r.3
    }
    for cIdx in 0..<4 {
        let r = winogradAT(cols[cIdx], cols[4 + cIdx], cols[8 + cIdx], cols[12 + cIdx], cols[16 + cIdx], cols[20 + cIdx])
        out[cIdx] = r.0 + bias; out[4 + cIdx] = r.1 + bias; out[8 + cIdx] = r.2 + bias; out[12 + cIdx] = r.3 + bias
        if relu {
            for k in 0..<4 { out[k * 4 + cIdx] = relu8(out[k * 4 + cIdx]) }
        }
    }
}

/// The output transform followed by a 2x2 max pool (ceil mode: a window cut by the image's edge
/// takes the max of what is inside): 8 tiles give 16 pooled pixels on pooled rows y0/2, y0/2 + 1.
@inline(__always)
func transformOutputTiles4Pooled(_ m: UnsafePointer<Float>, xiStride: Int, bias: SIMD8<Float>, relu: Bool,
                                 temp cols: UnsafeMutablePointer<SIMD8<Float>>,
                                 plane: UnsafeMutablePointer<Float>, y0: Int, x0: Int, height: Int, width: Int) {
    let out = cols + 24
    outputTiles4(m, xiStride: xiStride, bias: bias, relu: relu, cols: cols, out: out)
    let pooledWidth = (width + 1) / 2
    let validRows = min(4, height - y0)
    for pr in 0..<2 where 2 * pr < validRows {
        // Rows 2pr and 2pr + 1 (when inside the image), per tile column c.
        var v = (out[8 * pr], out[8 * pr + 1], out[8 * pr + 2], out[8 * pr + 3])
        if 2 * pr + 1 < validRows {
            v = (max8(v.0, out[8 * pr + 4]), max8(v.1, out[8 * pr + 5]), max8(v.2, out[8 * pr + 6]), max8(v.3, out[8 * pr + 7]))
        }
        let row = plane + (y0 / 2 + pr) * pooledWidth
        let px0 = x0 / 2
        if x0 + 32 <= width {
            // Pooled columns 2t and 2t + 1 of tile t, interleaved into 16 consecutive pixels.
            sx_store_interleaved2(row + px0, max8(v.0, v.1), max8(v.2, v.3))
        } else {
            func value(_ j: Int) -> Float {                          // full-size column x0 + j
                switch j % 4 { case 0: return v.0[j / 4]; case 1: return v.1[j / 4]; case 2: return v.2[j / 4]; default: return v.3[j / 4] }
            }
            var k = 0
            while k < 16 && px0 + k < pooledWidth {
                let j = 2 * k
                row[px0 + k] = x0 + j + 1 < width ? max(value(j), value(j + 1)) : value(j)
                k += 1
            }
        }
    }
}

/// Y = A^T M A for 8 tiles, plus bias and activation, written to rows y0..y0+3 at column x0.
@inline(__always)
func transformOutputTiles4(_ m: UnsafePointer<Float>, xiStride: Int, bias: SIMD8<Float>, relu: Bool, temp cols: UnsafeMutablePointer<SIMD8<Float>>,
                           plane: UnsafeMutablePointer<Float>, y0: Int, x0: Int, height: Int, width: Int) {
    do {
        let out = cols + 24   // cols[i*4+c]: row i of M, column-combined; out[r*4+c]
        outputTiles4(m, xiStride: xiStride, bias: bias, relu: relu, cols: cols, out: out)
        for r in 0..<4 where y0 + r < height {
            let row = plane + (y0 + r) * width
            let o = out + r * 4
            // The 4 columns of 8 tiles, interleaved into 32 consecutive pixels.
            if x0 + 32 <= width {
                sx_store_interleaved4(row + x0, o[0], o[1], o[2], o[3])
            } else {
                for k in 0..<max(0, width - x0) { row[x0 + k] = o[k % 4][k / 4] }
            }
        }
    }
}

/// `points` matrix products M[xi] (oc x tiles) = U[xi] (oc x c) * V[xi] (c x tiles) on the conv
/// micro-kernel (36 points for F(4x4)): U[xi] packed like the kernel's
/// weights ([oc tile of 4][c][tile]), V[xi] and M[xi] rows `stride` floats apart; `zeroBias` holds
/// `oc` zeros. Every tile is stored whole: M's rows (`stride` = nPad) have room for the last tile's
/// spill past `tiles`, while a partial store is a scalar loop that every row of tiles would end in.
@inline(__always)
func winogradProducts(points: Int, u: UnsafePointer<Float>, v: UnsafePointer<Float>, m: UnsafeMutablePointer<Float>,
                      c: Int, oc: Int, stride: Int, tiles: Int, offsets: TapOffsets, kernels: MicroKernels, zeroBias: UnsafePointer<Float>) {
    let tp = kernels.tilePixels
    for xi in 0..<points {
        let vx = v + xi * c * stride, ux = u + xi * oc * c
        var x0 = 0
        while x0 < tiles {
            kernels.allChannels(oc, weightsPerChannel: c,
                                TileArgs(src: vx + x0, offsets: offsets.pointer, taps: offsets.count, weights: ux, out: m + xi * oc * stride + x0,
                                         outStride: stride, bias: zeroBias, relu: false, valid: tp))
            x0 += tp
        }
    }
}
