/// The engine's small op set besides convolution: pooling, upsampling, statistics, per-channel affine maps.
public enum Ops {
    /// Max pool 2x2, stride 2 (ceil mode: a trailing odd row/column pools alone).
    public static func maxPool2x2(_ x: Tensor) -> Tensor {
        let ho = (x.height + 1) / 2, wo = (x.width + 1) / 2
        let out = Tensor(channels: x.channels, height: ho, width: wo)
        let w = x.width, h = x.height
        Parallel.forRanges(x.channels * ho, minChunk: 8) { range in
            for i in range {
                let c = i / ho, y = i % ho
                let r0 = x.plane(c) + (2 * y) * w
                let r1 = (2 * y + 1 < h) ? r0 + w : r0
                let dst = out.plane(c) + y * wo
                var xo = 0
                // 8 outputs per step: rows max'ed, then even and odd columns (vmaxps, not the stdlib's scalar max).
                while 2 * xo + 16 <= w {
                    let a = UnsafeRawPointer(r0 + 2 * xo).loadUnaligned(as: SIMD16<Float>.self)
                    let b = UnsafeRawPointer(r1 + 2 * xo).loadUnaligned(as: SIMD16<Float>.self)
                    let v = max16(a, b)
                    store8(max8(v.evenHalf, v.oddHalf), dst + xo)
                    xo += 8
                }
                while xo < wo {
                    let x0 = 2 * xo, x1 = min(2 * xo + 1, w - 1)
                    dst[xo] = max(max(r0[x0], r0[x1]), max(r1[x0], r1[x1]))
                    xo += 1
                }
            }
        }
        return out
    }

    /// Nearest-neighbour 2x upsampling.
    public static func upsampleNearest2x(_ x: Tensor) -> Tensor {
        let w = x.width, wo = 2 * w
        let out = Tensor(channels: x.channels, height: 2 * x.height, width: wo)
        Parallel.forRanges(x.channels * x.height, minChunk: 8) { range in
            for i in range {
                let c = i / x.height, y = i % x.height
                let src = x.plane(c) + y * w
                let d0 = out.plane(c) + (2 * y) * wo
                for xi in 0..<w { let v = src[xi]; d0[2 * xi] = v; d0[2 * xi + 1] = v }
                (d0 + wo).update(from: d0, count: wo)
            }
        }
        return out
    }

    /// Bilinear 2x upsampling with half-pixel centres (PyTorch align_corners=false), edges clamped:
    /// out[2i] = 0.25 x[i-1] + 0.75 x[i], out[2i+1] = 0.75 x[i] + 0.25 x[i+1], separably.
    public static func upsampleBilinear2x(_ x: Tensor) -> Tensor {
        let h = x.height, w = x.width, wo = 2 * w, ho = 2 * h
        let out = Tensor(channels: x.channels, height: ho, width: wo)
        Parallel.forRanges(x.channels * ho, minChunk: 16) { range in
            let rowA = UnsafeMutablePointer<Float>.allocate(capacity: wo)
            let rowB = UnsafeMutablePointer<Float>.allocate(capacity: wo)
            defer { rowA.deallocate(); rowB.deallocate() }
            for i in range {
                let c = i / ho, yo = i % ho
                let yi = yo / 2
                let yn = (yo % 2 == 0) ? max(yi - 1, 0) : min(yi + 1, h - 1)
                let plane = x.plane(c)
                widen(plane + yi * w, w, rowA)
                widen(plane + yn * w, w, rowB)
                let dst = out.plane(c) + yo * wo
                for j in 0..<wo { dst[j] = 0.75 * rowA[j] + 0.25 * rowB[j] }
            }
        }
        return out
    }

    @inline(__always)
    static func widen(_ src: UnsafePointer<Float>, _ w: Int, _ dst: UnsafeMutablePointer<Float>) {
        for i in 0..<w {
            let l = src[max(i - 1, 0)], c = src[i], r = src[min(i + 1, w - 1)]
            dst[2 * i] = 0.25 * l + 0.75 * c
            dst[2 * i + 1] = 0.75 * c + 0.25 * r
        }
    }

    /// Per-channel mean and standard deviation, std = sqrt(unbiased variance + eps) as in AdaIN.
    public static func meanStd(_ x: Tensor, eps: Double = 1e-5) -> (mean: [Float], std: [Float]) {
        var mean = [Float](repeating: 0, count: x.channels)
        var std = [Float](repeating: 0, count: x.channels)
        let n = x.planeSize
        mean.withUnsafeMutableBufferPointer { mp in
            std.withUnsafeMutableBufferPointer { sp in
                let m = mp.baseAddress!, s = sp.baseAddress!
                Parallel.forRanges(x.channels, minChunk: 1) { range in
                    for c in range {
                        let (mu, ss) = channelMoments(x.plane(c), n)
                        m[c] = Float(mu)
                        s[c] = Float((max(ss, 0) / Double(max(n - 1, 1)) + eps).squareRoot())
                    }
                }
            }
        }
        return (mean, std)
    }

    /// Mean and sum of squared deviations of one plane (two passes in double precision).
    static func channelMoments(_ p: UnsafePointer<Float>, _ n: Int) -> (Double, Double) {
        var acc = SIMD8<Double>()
        var i = 0
        var sum = 0.0
        while i + 8 <= n {
            acc += SIMD8<Double>(load8(p + i))
            i += 8
        }
        sum = acc.sum()
        while i < n { sum += Double(p[i]); i += 1 }
        let mu = sum / Double(n)
        var sq = SIMD8<Double>()
        let m8 = SIMD8<Double>(repeating: mu)
        i = 0
        while i + 8 <= n {
            let d = SIMD8<Double>(load8(p + i)) - m8
            madd(&sq, d, d)
            i += 8
        }
        var ss = sq.sum()
        while i < n { let d = Double(p[i]) - mu; ss += d * d; i += 1 }
        return (mu, ss)
    }

    /// Per-channel global average pooling.
    public static func globalAveragePool(_ x: Tensor) -> [Float] {
        (0..<x.channels).map { c in
            var s = 0.0
            let p = x.plane(c)
            for i in 0..<x.planeSize { s += Double(p[i]) }
            return Float(s / Double(x.planeSize))
        }
    }

    /// y = x * scale[c] + shift[c], in place.
    public static func affineInPlace(_ x: Tensor, scale: [Float], shift: [Float]) {
        precondition(scale.count == x.channels && shift.count == x.channels)
        let n = x.planeSize
        Parallel.forRanges(x.channels, minChunk: 1) { range in
            for c in range {
                let p = x.plane(c)
                let a = SIMD8<Float>(repeating: scale[c]), b = SIMD8<Float>(repeating: shift[c])
                var i = 0
                while i + 8 <= n { var v = b; madd(&v, a, load8(p + i)); store8(v, p + i); i += 8 }
                while i < n { p[i] = p[i] * scale[c] + shift[c]; i += 1 }
            }
        }
    }

    /// out = a * wa[c] + b * wb[c] (+ relu), element-wise per channel, into a new tensor or into
    /// `into` (which may be `a` itself, saving an activation-sized buffer).
    @discardableResult
    public static func combine(_ a: Tensor, _ wa: [Float], _ b: Tensor, _ wb: [Float], relu: Bool = false, into: Tensor? = nil) -> Tensor {
        precondition(a.channels == b.channels && a.height == b.height && a.width == b.width, "combine shape mismatch")
        let out = into ?? Tensor(channels: a.channels, height: a.height, width: a.width)
        precondition(out.count == a.count, "combine output shape mismatch")
        let n = a.planeSize
        Parallel.forRanges(a.channels, minChunk: 1) { range in
            for c in range {
                let pa = a.plane(c), pb = b.plane(c), po = out.plane(c)
                let va = SIMD8<Float>(repeating: wa[c]), vb = SIMD8<Float>(repeating: wb[c])
                var i = 0
                while i + 8 <= n {
                    var v = load8(pa + i) * va
                    madd(&v, vb, load8(pb + i))
                    if relu { v = relu8(v) }
                    store8(v, po + i)
                    i += 8
                }
                while i < n {
                    var v = pa[i] * wa[c] + pb[i] * wb[c]
                    if relu { v = max(v, 0) }
                    po[i] = v
                    i += 1
                }
            }
        }
        return out
    }

    /// a += b, element-wise.
    public static func addInPlace(_ a: Tensor, _ b: Tensor) {
        precondition(a.count == b.count, "add shape mismatch")
        let n = a.count
        Parallel.forRanges((n + 4095) / 4096, minChunk: 4) { range in
            var i = range.lowerBound * 4096
            let end = min(range.upperBound * 4096, n)
            while i + 8 <= end { store8(load8(a.data + i) + load8(b.data + i), a.data + i); i += 8 }
            while i < end { a.data[i] += b.data[i]; i += 1 }
        }
    }
}

/// Lane-wise max as one vmaxps (see `relu8`).
@inline(__always)
func max8(_ a: SIMD8<Float>, _ b: SIMD8<Float>) -> SIMD8<Float> { a.replacing(with: b, where: a .< b) }

@inline(__always)
func max16(_ a: SIMD16<Float>, _ b: SIMD16<Float>) -> SIMD16<Float> { a.replacing(with: b, where: a .< b) }
