/// A split of a height x width grid into two regions, the foreground (set positions) and the
/// background, for statistics and affine maps taken per region (spatial control: two styles,
/// one mask). Row-major, one byte per position (1 = foreground, 0 = background).
public struct RegionMask: Sendable, Equatable {
    public let height: Int
    public let width: Int
    public let values: [UInt8]

    /// A mask from row-major values (any non-zero byte is foreground).
    public init(height: Int, width: Int, values: [UInt8]) {
        precondition(height > 0 && width > 0 && values.count == height * width, "mask of \(values.count) values is not \(height)x\(width)")
        self.height = height
        self.width = width
        self.values = values.map { $0 == 0 ? 0 : 1 }
    }

    /// A mask with every position in one region.
    public init(height: Int, width: Int, filled foreground: Bool) {
        self.init(height: height, width: width, values: [UInt8](repeating: foreground ? 1 : 0, count: height * width))
    }

    /// Foreground positions.
    public var foregroundCount: Int { values.reduce(0) { $0 + Int($1) } }

    /// The mask sampled at the centres of an `height` x `width` grid:
    /// `src = floor((dst + 0.5) * srcSize / dstSize)` on each axis (nearest, so it stays binary).
    public func sampled(height h: Int, width w: Int) -> RegionMask {
        if h == height && w == width { return self }
        let ys = RegionMask.centreIndices(h, height), xs = RegionMask.centreIndices(w, width)
        var out = [UInt8](repeating: 0, count: h * w)
        for y in 0..<h {
            let row = ys[y] * width
            for x in 0..<w { out[y * w + x] = values[row + xs[x]] }
        }
        return RegionMask(h, w, out)
    }

    /// For each of `n` destination positions, the source index among `sourceCount` at its centre.
    /// Exact integer form of floor((i + 0.5) * src / n) = floor((2i + 1) * src / (2n)).
    public static func centreIndices(_ n: Int, _ sourceCount: Int) -> [Int] {
        (0..<n).map { min(((2 * $0 + 1) * sourceCount) / (2 * n), sourceCount - 1) }
    }

    /// The mask as 0/1 floats (for SIMD selects).
    func floats() -> [Float] { values.map { Float($0) } }

    private init(_ h: Int, _ w: Int, _ v: [UInt8]) {
        height = h; width = w; values = v
    }
}

/// Per-channel statistics of one region.
public struct ChannelStats: Sendable, Equatable {
    public var mean: [Float]
    public var std: [Float]
    public init(mean: [Float], std: [Float]) { self.mean = mean; self.std = std }
}

extension Ops {
    /// Per-channel mean and std (sqrt(unbiased variance + eps)) over each region's positions alone:
    /// nil for an empty region; a region of one position takes the whole map's statistics.
    public static func regionMeanStd(_ x: Tensor, _ mask: RegionMask, eps: Double = 1e-5)
        -> (foreground: ChannelStats?, background: ChannelStats?) {
        precondition(mask.height == x.height && mask.width == x.width, "mask \(mask.height)x\(mask.width) for a \(x.shapeDescription) map")
        let nf = mask.foregroundCount, nb = x.planeSize - nf
        if nf == 0 || nb == 0 {
            // One region covers the map: its statistics are the map's.
            let (m, s) = meanStd(x, eps: eps)
            let all = ChannelStats(mean: m, std: s)
            return nf == 0 ? (nil, all) : (all, nil)
        }
        let whole: ChannelStats? = (nf == 1 || nb == 1) ? { let (m, s) = meanStd(x, eps: eps); return ChannelStats(mean: m, std: s) }() : nil
        var fm = [Float](repeating: 0, count: x.channels), fs = fm, bm = fm, bs = fm
        let mf = mask.floats()
        let n = x.planeSize
        mf.withUnsafeBufferPointer { mp in
            let m = mp.baseAddress!
            fm.withUnsafeMutableBufferPointer { fmp in fs.withUnsafeMutableBufferPointer { fsp in
            bm.withUnsafeMutableBufferPointer { bmp in bs.withUnsafeMutableBufferPointer { bsp in
                let fmo = fmp.baseAddress!, fso = fsp.baseAddress!, bmo = bmp.baseAddress!, bso = bsp.baseAddress!
                Parallel.forRanges(x.channels, minChunk: 1) { range in
                    for c in range {
                        let r = regionMoments(x.plane(c), m, n, nf, nb)
                        fmo[c] = Float(r.fgMean); fso[c] = Float((max(r.fgSS, 0) / Double(max(nf - 1, 1)) + eps).squareRoot())
                        bmo[c] = Float(r.bgMean); bso[c] = Float((max(r.bgSS, 0) / Double(max(nb - 1, 1)) + eps).squareRoot())
                    }
                }
            }}}}
        }
        let fg = nf == 1 ? whole! : ChannelStats(mean: fm, std: fs)
        let bg = nb == 1 ? whole! : ChannelStats(mean: bm, std: bs)
        return (fg, bg)
    }

    /// Means and sums of squared deviations of one plane over the foreground (mask 1) and background
    /// (mask 0), two passes in double precision. Multiplying by exactly 0 or 1 keeps each sum exact to its region.
    static func regionMoments(_ p: UnsafePointer<Float>, _ m: UnsafePointer<Float>, _ n: Int, _ nf: Int, _ nb: Int)
        -> (fgMean: Double, fgSS: Double, bgMean: Double, bgSS: Double) {
        var accF = SIMD8<Double>(), accB = SIMD8<Double>()
        var i = 0
        while i + 8 <= n {
            let v = SIMD8<Double>(load8(p + i)), w = SIMD8<Double>(load8(m + i))
            madd(&accF, v, w)
            madd(&accB, v, 1 - w)
            i += 8
        }
        var sf = accF.sum(), sb = accB.sum()
        while i < n { let v = Double(p[i]); if m[i] > 0.5 { sf += v } else { sb += v }; i += 1 }
        let muF = sf / Double(max(nf, 1)), muB = sb / Double(max(nb, 1))
        var sqF = SIMD8<Double>(), sqB = SIMD8<Double>()
        let mF = SIMD8<Double>(repeating: muF), mB = SIMD8<Double>(repeating: muB)
        i = 0
        while i + 8 <= n {
            let v = SIMD8<Double>(load8(p + i)), w = SIMD8<Double>(load8(m + i))
            let df = (v - mF) * w, db = (v - mB) * (1 - w)
            madd(&sqF, df, df)
            madd(&sqB, db, db)
            i += 8
        }
        var ssF = sqF.sum(), ssB = sqB.sum()
        while i < n {
            let v = Double(p[i])
            if m[i] > 0.5 { ssF += (v - muF) * (v - muF) } else { ssB += (v - muB) * (v - muB) }
            i += 1
        }
        return (muF, ssF, muB, ssB)
    }

    /// y = x * scale[c] + shift[c] in place, with the foreground's vectors where the mask is set and
    /// the background's elsewhere.
    public static func regionAffineInPlace(_ x: Tensor, _ mask: RegionMask,
                                           foreground: (scale: [Float], shift: [Float]),
                                           background: (scale: [Float], shift: [Float])) {
        precondition(mask.height == x.height && mask.width == x.width, "mask \(mask.height)x\(mask.width) for a \(x.shapeDescription) map")
        precondition([foreground.scale, foreground.shift, background.scale, background.shift].allSatisfy { $0.count == x.channels })
        let n = x.planeSize
        let mf = mask.floats()
        mf.withUnsafeBufferPointer { mp in
            let m = mp.baseAddress!
            Parallel.forRanges(x.channels, minChunk: 1) { range in
                for c in range {
                    let p = x.plane(c)
                    let aF = SIMD8<Float>(repeating: foreground.scale[c]), bF = SIMD8<Float>(repeating: foreground.shift[c])
                    let aB = SIMD8<Float>(repeating: background.scale[c]), bB = SIMD8<Float>(repeating: background.shift[c])
                    var i = 0
                    while i + 8 <= n {
                        let sel = load8(m + i) .> 0.5
                        var v = bB.replacing(with: bF, where: sel)
                        madd(&v, aB.replacing(with: aF, where: sel), load8(p + i))
                        store8(v, p + i)
                        i += 8
                    }
                    while i < n {
                        let fg = m[i] > 0.5
                        p[i] = p[i] * (fg ? foreground.scale[c] : background.scale[c]) + (fg ? foreground.shift[c] : background.shift[c])
                        i += 1
                    }
                }
            }
        }
    }

    /// out = a * wa[c] + b * wb[c] (+ relu), with the foreground's weight vectors where the mask is set
    /// and the background's elsewhere; into a new tensor or into `into` (which may be `a`).
    @discardableResult
    public static func regionCombine(_ a: Tensor, _ wa: (foreground: [Float], background: [Float]),
                                     _ b: Tensor, _ wb: (foreground: [Float], background: [Float]),
                                     mask: RegionMask, relu: Bool = false, into: Tensor? = nil) -> Tensor {
        precondition(a.channels == b.channels && a.height == b.height && a.width == b.width, "combine shape mismatch")
        precondition(mask.height == a.height && mask.width == a.width, "mask \(mask.height)x\(mask.width) for a \(a.shapeDescription) map")
        let out = into ?? Tensor(channels: a.channels, height: a.height, width: a.width)
        precondition(out.count == a.count, "combine output shape mismatch")
        let n = a.planeSize
        let mf = mask.floats()
        mf.withUnsafeBufferPointer { mp in
            let m = mp.baseAddress!
            Parallel.forRanges(a.channels, minChunk: 1) { range in
                for c in range {
                    let pa = a.plane(c), pb = b.plane(c), po = out.plane(c)
                    let vaF = SIMD8<Float>(repeating: wa.foreground[c]), vaB = SIMD8<Float>(repeating: wa.background[c])
                    let vbF = SIMD8<Float>(repeating: wb.foreground[c]), vbB = SIMD8<Float>(repeating: wb.background[c])
                    var i = 0
                    while i + 8 <= n {
                        let sel = load8(m + i) .> 0.5
                        var v = load8(pa + i) * vaB.replacing(with: vaF, where: sel)
                        madd(&v, vbB.replacing(with: vbF, where: sel), load8(pb + i))
                        if relu { v = relu8(v) }
                        store8(v, po + i)
                        i += 8
                    }
                    while i < n {
                        let fg = m[i] > 0.5
                        var v = pa[i] * (fg ? wa.foreground[c] : wa.background[c]) + pb[i] * (fg ? wb.foreground[c] : wb.background[c])
                        if relu { v = max(v, 0) }
                        po[i] = v
                        i += 1
                    }
                }
            }
        }
        return out
    }
}
