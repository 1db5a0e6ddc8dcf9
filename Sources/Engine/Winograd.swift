/// Winograd F(2x2, 3x3) for dense 3x3 convolutions (stride 1, reflection pad 1): 16 multiplies per
/// 2x2 output tile instead of 36, i.e. 2.25x fewer FLOPs than direct convolution. Per band of tile
/// rows, per input channel: V = B^T d B over 4x4 input tiles (8 tiles per SIMD op); 16 matrix
/// products M[xi] = U[xi] V[xi] on the conv micro-kernel; Y = A^T M A written as interleaved pairs.
/// Numerically F(2,3) is benign (only 1/2 in its transforms): results match direct convolution to ~1e-6.
struct WinogradWeights {
    /// U[xi] packed per xi as [oc tile of 4][ic][tile], like the conv micro-kernel's weights.
    let packed: UnsafeMutablePointer<Float>
    let inChannels: Int
    let outChannels: Int

    /// Transforms OIHW 3x3 weights: U = G g G^T with G = [[1,0,0],[.5,.5,.5],[.5,-.5,.5],[0,0,1]].
    init(weight: [Float], inChannels c: Int, outChannels oc: Int) {
        inChannels = c
        outChannels = oc
        packed = .allocate(capacity: 16 * oc * c)
        var u = [Float](repeating: 0, count: 16)
        for o in 0..<oc {
            for i in 0..<c {
                let g = (0..<9).map { weight[(o * c + i) * 9 + $0] }
                // G g: 4 rows of 3.
                var gg = [Float](repeating: 0, count: 12)
                for col in 0..<3 {
                    let a = g[col], b = g[3 + col], d = g[6 + col]
                    gg[col] = a; gg[3 + col] = (a + b + d) / 2; gg[6 + col] = (a - b + d) / 2; gg[9 + col] = d
                }
                // (G g) G^T: each row [a b d] -> [a, (a+b+d)/2, (a-b+d)/2, d].
                for r in 0..<4 {
                    let a = gg[3 * r], b = gg[3 * r + 1], d = gg[3 * r + 2]
                    u[4 * r] = a; u[4 * r + 1] = (a + b + d) / 2; u[4 * r + 2] = (a - b + d) / 2; u[4 * r + 3] = d
                }
                let t0 = o / Conv2D.tileChannels * Conv2D.tileChannels
                let tile = min(Conv2D.tileChannels, oc - t0)
                for xi in 0..<16 {
                    packed[xi * oc * c + t0 * c + i * tile + (o - t0)] = u[xi]
                }
            }
        }
    }

    func deallocate() { packed.deallocate() }
}

extension Conv2D {
    /// Runs this (dense 3x3, stride 1, pad 1) convolution with Winograd F(2x2, 3x3).
    func runWinograd(_ input: ConvInput, _ wg: WinogradWeights, into out: Tensor) {
        let h = input.height, w = input.width
        let c = inChannels, oc = outChannels
        let tilesX = (w + 1) / 2, tilesY = (h + 1) / 2
        let rowTiles = (tilesX + 7) / 8 * 8                       // tiles per tile row, SIMD-padded
        // A task is a block of tile rows x a chunk of tile columns, sized so its transformed
        // inputs and products (16 x (c + oc) x tiles floats) stay near L2 instead of spilling to L3.
        let target = max(48, Conv2D.winogradTileBudget / max(1, c + oc))
        let chunk = min(rowTiles, max(8, target / 8 * 8))          // tile columns per task
        let columnChunks = (rowTiles + chunk - 1) / chunk
        let tileRowsPerTask = max(1, min(tilesY, target / chunk))
        let n = tileRowsPerTask * chunk
        let nPad = (n + Conv2D.tilePixels - 1) / Conv2D.tilePixels * Conv2D.tilePixels + 8
        let phaseWidth = rowTiles + 16                             // even/odd padded columns per input row
        let vCount = 16 * c * nPad, mCount = 16 * oc * nPad
        let offsets = TapOffsets(channels: c, channelStride: nPad)   // V's rows, for every task's products
        defer { offsets.deallocate() }
        let rowsCount = 4 * 2 * phaseWidth
        let tasks = (tilesY + tileRowsPerTask - 1) / tileRowsPerTask * columnChunks
        let relu = activation == .relu

        Parallel.forRanges(tasks, minChunk: 1) { range in
          ScratchPool.shared.with(vCount + mCount + rowsCount + input.rowScratchCount) { scratch in
            let vBuf = scratch, mBuf = scratch + vCount, rows = mBuf + mCount, tmp = rows + rowsCount
            for task in range {
                let ty0 = task / columnChunks * tileRowsPerTask
                let tx0 = task % columnChunks * chunk
                let ncols = min(chunk, rowTiles - tx0)              // multiple of 8
                let nty = min(tileRowsPerTask, tilesY - ty0)
                // Input transform.
                for ic in 0..<c {
                    for lr in 0..<nty {
                        let ty = ty0 + lr
                        for i in 0..<4 {
                            let src = input.row(channel: ic, logicalRow: reflect(2 * ty - 1 + i, h), scratch: tmp)
                            fillPaddedRow(row: src, width: w, pad: 1, stride: 2, phaseWidth: phaseWidth, into: rows + i * 2 * phaseWidth)
                        }
                        var t0 = 0
                        while t0 < ncols {
                            transformInputTiles(rows: rows, phaseWidth: phaseWidth, t0: tx0 + t0,
                                                into: vBuf + ic * nPad + lr * ncols + t0, xiStride: c * nPad)
                            t0 += 8
                        }
                    }
                }
                // 16 matrix products: M[xi] (oc x tiles) = U[xi] (oc x c) * V[xi] (c x tiles).
                winogradProducts(points: 16, u: UnsafePointer(wg.packed), v: UnsafePointer(vBuf), m: mBuf,
                                 c: c, oc: oc, stride: nPad, tiles: nty * ncols, offsets: offsets)
                // Output transform, bias, activation.
                for o in 0..<oc {
                    let bias = SIMD8<Float>(repeating: biasValues[o])
                    for lr in 0..<nty {
                        let y0 = 2 * (ty0 + lr)
                        var t0 = 0
                        while t0 < ncols && tx0 + t0 < tilesX {
                            let m = UnsafePointer(mBuf + o * nPad + lr * ncols + t0)
                            let (r0, r1) = transformOutputTiles(m, xiStride: oc * nPad, bias: bias, relu: relu)
                            let x = 2 * (tx0 + t0)
                            writePairs(r0, out.plane(o) + y0 * w, x: x, width: w)
                            if y0 + 1 < h { writePairs(r1, out.plane(o) + (y0 + 1) * w, x: x, width: w) }
                            t0 += 8
                        }
                    }
                }
            }
          }
        }
    }
}

/// `points` matrix products M[xi] (oc x tiles) = U[xi] (oc x c) * V[xi] (c x tiles) on the conv
/// micro-kernel, shared by F(2x2) (16 points) and F(4x4) (36): U[xi] packed like the kernel's
/// weights ([oc tile of 4][c][tile]), V[xi] and M[xi] rows `stride` floats apart.
@inline(__always)
func winogradProducts(points: Int, u: UnsafePointer<Float>, v: UnsafePointer<Float>, m: UnsafeMutablePointer<Float>,
                      c: Int, oc: Int, stride: Int, tiles: Int, offsets: TapOffsets) {
    let bias = zeroBias                          // a global: read once, not a lazy-init check per tile
    for xi in 0..<points {
        let vx = v + xi * c * stride, ux = u + xi * oc * c
        var x0 = 0
        while x0 < tiles {
            let valid = min(Conv2D.tilePixels, tiles - x0)
            var t0 = 0
            while t0 < oc {
                let tile = min(Conv2D.tileChannels, oc - t0)
                convTile(channels: tile, TileArgs(src: vx + x0, offsets: offsets.pointer, taps: offsets.count, weights: ux + t0 * c, out: m + (xi * oc + t0) * stride + x0,
                                                  outStride: stride, bias: bias, relu: false, valid: valid))
                t0 += tile
            }
            x0 += Conv2D.tilePixels
        }
    }
}

/// V = B^T d B for 8 consecutive tiles; `rows` holds 4 padded input rows, each as even/odd phases.
/// B^T = [[1,0,-1,0],[0,1,1,0],[0,-1,1,0],[0,1,0,-1]].
@inline(__always)
func transformInputTiles(rows: UnsafePointer<Float>, phaseWidth: Int, t0: Int, into v: UnsafeMutablePointer<Float>, xiStride: Int) {
    // Horizontal transform of each row: tile t reads padded columns 2t..2t+3 = even[t], odd[t], even[t+1], odd[t+1].
    @inline(__always) func horizontal(_ i: Int) -> (SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>) {
        let e = rows + i * 2 * phaseWidth + t0, o = e + phaseWidth
        let c0 = load8(e), c1 = load8(o), c2 = load8(e + 1), c3 = load8(o + 1)
        return (c0 - c2, c1 + c2, c2 - c1, c1 - c3)
    }
    let h0 = horizontal(0), h1 = horizontal(1), h2 = horizontal(2), h3 = horizontal(3)
    @inline(__always) func put(_ xi: Int, _ x: SIMD8<Float>) { store8(x, v + xi * xiStride) }
    put(0, h0.0 - h2.0); put(1, h0.1 - h2.1); put(2, h0.2 - h2.2); put(3, h0.3 - h2.3)
    put(4, h1.0 + h2.0); put(5, h1.1 + h2.1); put(6, h1.2 + h2.2); put(7, h1.3 + h2.3)
    put(8, h2.0 - h1.0); put(9, h2.1 - h1.1); put(10, h2.2 - h1.2); put(11, h2.3 - h1.3)
    put(12, h1.0 - h3.0); put(13, h1.1 - h3.1); put(14, h1.2 - h3.2); put(15, h1.3 - h3.3)
}

/// Y = A^T M A for 8 tiles, A^T = [[1,1,1,0],[0,1,-1,-1]]: returns (row 0, row 1) with the tile's two
/// columns interleaved, bias added and the activation applied.
@inline(__always)
func transformOutputTiles(_ m: UnsafePointer<Float>, xiStride: Int, bias: SIMD8<Float>, relu: Bool) -> (SIMD16<Float>, SIMD16<Float>) {
    @inline(__always) func at(_ xi: Int) -> SIMD8<Float> { load8(m + xi * xiStride) }
    // Rows: s0 = m0 + m1 + m2, s1 = m1 - m2 - m3 (per column j).
    let m0 = (at(0), at(1), at(2), at(3)), m1 = (at(4), at(5), at(6), at(7))
    let m2 = (at(8), at(9), at(10), at(11)), m3 = (at(12), at(13), at(14), at(15))
    let a0 = m0.0 + m1.0 + m2.0, a1 = m0.1 + m1.1 + m2.1, a2 = m0.2 + m1.2 + m2.2, a3 = m0.3 + m1.3 + m2.3
    let b0 = m1.0 - m2.0 - m3.0, b1 = m1.1 - m2.1 - m3.1, b2 = m1.2 - m2.2 - m3.2, b3 = m1.3 - m2.3 - m3.3
    var y00 = a0 + a1 + a2 + bias, y01 = a1 - a2 - a3 + bias
    var y10 = b0 + b1 + b2 + bias, y11 = b1 - b2 - b3 + bias
    if relu {
        y00 = relu8(y00); y01 = relu8(y01); y10 = relu8(y10); y11 = relu8(y11)
    }
    var r0 = SIMD16<Float>(), r1 = SIMD16<Float>()
    r0.evenHalf = y00; r0.oddHalf = y01
    r1.evenHalf = y10; r1.oddHalf = y11
    return (r0, r1)
}

/// Stores 16 consecutive output values at column x of a row `width` wide (fewer at the right edge).
@inline(__always)
func writePairs(_ v: SIMD16<Float>, _ row: UnsafeMutablePointer<Float>, x: Int, width: Int) {
    if x + 16 <= width {
        UnsafeMutableRawPointer(row + x).storeBytes(of: v, as: SIMD16<Float>.self)
    } else {
        for i in 0..<max(0, width - x) { row[x + i] = v[i] }
    }
}
