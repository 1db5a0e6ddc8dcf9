import CImageCodecs

/// The resampling filter of `PlanarImage.resized`; both are antialiased when downscaling.
public enum ResizeFilter: Sendable, Equatable {
    /// Keys cubic (a = -0.5) with its support widened by the scale factor when downscaling
    /// (the same weights as Pillow's antialiased `BICUBIC`). Sharp; may overshoot [0,1] slightly at hard edges.
    case bicubic
    /// Exact area averaging (box coverage) when downscaling, linear interpolation when upscaling. Never overshoots.
    case area
}

extension PlanarImage {
    /// Downscale so the longer side is at most maxSide (no-op if already within); antialiased (`filter`: separable bicubic with its support widened by the scale factor, or exact area averaging), never nearest.
    /// The shorter side is scaled by the same factor and rounded to the nearest integer (at least 1).
    public func resized(toFit maxSide: Int, filter: ResizeFilter = .bicubic) -> PlanarImage {
        precondition(maxSide > 0, "resized(toFit:): maxSide must be positive, got \(maxSide)")
        guard max(width, height) > maxSide else { return self }
        let size = PlanarImage.fittingSize(width: width, height: height, maxSide: maxSide)
        return resized(width: size.width, height: size.height, filter: filter)
    }

    /// The size `resized(toFit:)` produces for a `width` x `height` image.
    public static func fittingSize(width: Int, height: Int, maxSide: Int) -> (width: Int, height: Int) {
        precondition(maxSide > 0, "maxSide must be positive")
        guard max(width, height) > maxSide else { return (width, height) }
        func scaled(_ side: Int, _ longer: Int) -> Int {
            max(1, Int((Double(side) * Double(maxSide) / Double(longer)).rounded()))
        }
        return width >= height ? (maxSide, scaled(height, width)) : (scaled(width, height), maxSide)
    }

    /// Resamples to exactly `width` x `height` (each axis scaled independently; separable filter,
    /// antialiased on axes that shrink). Returns `self` when the size is unchanged.
    public func resized(width newWidth: Int, height newHeight: Int, filter: ResizeFilter = .bicubic) -> PlanarImage {
        precondition(newWidth > 0 && newHeight > 0, "resized: target size \(newWidth)x\(newHeight) must be positive")
        precondition(width > 0 && height > 0, "resized: cannot resample an empty \(width)x\(height) image")
        precondition(pixels.count == 3 * width * height, "PlanarImage: \(pixels.count) values for \(width)x\(height)x3")
        if newWidth == width && newHeight == height { return self }

        // The vertical pass is vectorised across whole rows, the horizontal pass is a dot
        // product per output pixel; run the vertical one first when it shrinks the image.
        var image = self
        if newHeight <= height {
            if newHeight != height { image = image.resampledVertically(to: newHeight, filter: filter) }
            if newWidth != width { image = image.resampledHorizontally(to: newWidth, filter: filter) }
        } else {
            if newWidth != width { image = image.resampledHorizontally(to: newWidth, filter: filter) }
            image = image.resampledVertically(to: newHeight, filter: filter)
        }
        return image
    }

    private func resampledVertically(to outH: Int, filter: ResizeFilter) -> PlanarImage {
        let k = ResampleKernel(inSize: height, outSize: outH, filter: filter)
        let w = width, h = height
        var taps = [UnsafePointer<Float>?](repeating: nil, count: max(k.stride, 1))
        let out = [Float](unsafeUninitializedCapacity: 3 * w * outH) { buf, count in
            pixels.withUnsafeBufferPointer { src in
                k.weights.withUnsafeBufferPointer { wts in
                    taps.withUnsafeMutableBufferPointer { tapRows in
                        let s = src.baseAddress!, d = buf.baseAddress!, wp = wts.baseAddress!
                        for p in 0..<3 {
                            let sp = s + p * w * h, dp = d + p * w * outH
                            for y in 0..<outH {
                                for t in 0..<k.counts[y] { tapRows[t] = UnsafePointer(sp + (k.starts[y] + t) * w) }
                                resampleRowVertically(tapRows.baseAddress!, count: k.counts[y], weights: wp + y * k.stride,
                                                      width: w, into: dp + y * w)
                            }
                        }
                    }
                }
            }
            count = 3 * w * outH
        }
        return PlanarImage(width: w, height: outH, pixels: out)
    }

    private func resampledHorizontally(to outW: Int, filter: ResizeFilter) -> PlanarImage {
        let k = HorizontalKernel(inSize: width, outSize: outW, filter: filter)
        let w = width, rows = 3 * height // the three planes are just 3*height rows here
        let out = [Float](unsafeUninitializedCapacity: rows * outW) { buf, count in
            pixels.withUnsafeBufferPointer { src in
                k.withPointers { kp in
                    let s = src.baseAddress!, d = buf.baseAddress!
                    for r in 0..<rows { kp.resampleRow(s + r * w, into: d + r * outW) }
                }
            }
            count = rows * outW
        }
        return PlanarImage(width: outW, height: height, pixels: out)
    }

    /// What `PlanarImage(interleaved 8-bit RGB, each sample v as v/255).resized(width:height:filter:)`
    /// gives, value for value, when both sides shrink, without the full-size float planes or the
    /// half-resized intermediate: source rows are converted to floats as the vertical filter first
    /// reaches them, into a ring of as many rows as the filter has taps, and each output row is
    /// filtered vertically and then horizontally by the same row kernels `resized` uses.
    /// Returns nil when the sizes do not shrink on both axes.
    static func downscaled(interleavedRGB8 src: UnsafePointer<UInt8>, width w: Int, height h: Int,
                           toWidth outW: Int, height outH: Int,
                           filter: ResizeFilter) -> PlanarImage? {
        guard outW > 0, outH > 0, outW < w, outH < h else { return nil }
        let kv = ResampleKernel(inSize: h, outSize: outH, filter: filter)
        // The ring holds the last `ringRows` converted rows; it suffices when each output row's
        // taps start no earlier than the previous row's (true of these kernels; checked anyway).
        for y in 1..<outH where kv.starts[y] < kv.starts[y - 1] { return nil }
        let ringRows = kv.counts.max() ?? 1
        let kh = HorizontalKernel(inSize: w, outSize: outW, filter: filter)
        var ring = [Float](repeating: 0, count: 3 * ringRows * w)
        var column = [Float](repeating: 0, count: w)
        var taps = [UnsafePointer<Float>?](repeating: nil, count: ringRows)
        let out = [Float](unsafeUninitializedCapacity: 3 * outW * outH) { buf, count in
            ring.withUnsafeMutableBufferPointer { ringBuf in
                column.withUnsafeMutableBufferPointer { columnBuf in
                    taps.withUnsafeMutableBufferPointer { tapRows in
                        kv.weights.withUnsafeBufferPointer { wv in
                            kh.withPointers { kp in
                                let r = ringBuf.baseAddress!, tmp = columnBuf.baseAddress!, d = buf.baseAddress!
                                func slot(_ p: Int, _ row: Int) -> UnsafeMutablePointer<Float> {
                                    r + (p * ringRows + row % ringRows) * w
                                }
                                var converted = 0 // source rows [0, converted) have been through the ring
                                for y in 0..<outH {
                                    let first = kv.starts[y], n = kv.counts[y]
                                    while converted < first + n {
                                        ImageDecoder.convertRGB8Row(src + converted * w * 3, count: w, red: slot(0, converted),
                                                                    green: slot(1, converted), blue: slot(2, converted))
                                        converted += 1
                                    }
                                    for p in 0..<3 {
                                        for t in 0..<n { tapRows[t] = UnsafePointer(slot(p, first + t)) }
                                        resampleRowVertically(tapRows.baseAddress!, count: n, weights: wv.baseAddress! + y * kv.stride,
                                                              width: w, into: tmp)
                                        kp.resampleRow(tmp, into: d + (p * outH + y) * outW)
                                    }
                                }
                            }
                        }
                    }
                }
            }
            count = 3 * outW * outH
        }
        return PlanarImage(width: outW, height: outH, pixels: out)
    }
}

/// One output row of the vertical pass: `into[x]` = the sum over the `count` (>= 1) taps of
/// weights[t] * rows[t][x], for x in 0..<width, summed in registers over every tap (in C,
/// `sc_resample_columns`): one write per output value however many taps there are.
@inline(__always)
private func resampleRowVertically(_ rows: UnsafePointer<UnsafePointer<Float>?>, count taps: Int,
                                   weights wy: UnsafePointer<Float>, width w: Int, into drow: UnsafeMutablePointer<Float>) {
    sc_resample_columns(rows, wy, taps, w, drow)
}

/// A `ResampleKernel` for the horizontal pass. Where a downscale halves the row (outputs two
/// inputs apart have windows two inputs apart), groups of eight outputs are summed tap by tap
/// in C (`sc_resample_stride2_groups`), eight outputs per vector; elsewhere each output is a
/// dot product of its taps, zero-padded to whole vectors of eight, so there is one vector
/// multiply per eight taps where the padded window stays inside the row.
private struct HorizontalKernel {
    /// How an output outside the halving groups is computed; decided once per kernel, not per row.
    enum Step: UInt8 {
        /// Its padded window, and those of the seven outputs after it (all before the halving
        /// groups, or all after them), stay inside the row: the eight are computed together.
        case eightInside
        /// Its padded window stays inside the row.
        case inside
        /// Its padded window would run past the row's end: its taps are summed one by one.
        case atTheEnd
    }

    let outSize: Int
    let lanes: Int
    let padded: [Float]
    let starts: [Int]
    let counts: [Int]
    let steps: [Step]
    /// Outputs halvingFirst ..< halvingFirst + 8 * halvingGroups go by groups of eight through
    /// `sc_resample_stride2_groups`, with `halvingTaps` taps each and these weights in its layout:
    /// one set per group, or a single set (`halvingWeightsStep` 0) when all groups have the same.
    let halvingFirst: Int
    let halvingGroups: Int
    let halvingTaps: Int
    let halvingWeights: [Float]
    let halvingWeightsStep: Int

    init(inSize: Int, outSize: Int, filter: ResizeFilter) {
        let k = ResampleKernel(inSize: inSize, outSize: outSize, filter: filter)
        self.outSize = outSize
        let taps = max(k.counts.max() ?? 1, 1)
        let lanes = (taps + 7) / 8 * 8
        var padded = [Float](repeating: 0, count: outSize * lanes)
        for x in 0..<outSize {
            for t in 0..<k.counts[x] { padded[x * lanes + t] = k.weights[x * k.stride + t] }
        }
        // A halving group's eight windows start two inputs apart and its loads (the last tap's
        // sixteen inputs) end inside the row. The groups run from the first such one for as
        // long as the next eight outputs form one too.
        func halving(_ x: Int) -> Bool {
            x + 8 <= outSize && k.starts[x] <= inSize - taps - 15
                && (1..<8).allSatisfy { k.starts[x + $0] == k.starts[x] + 2 * $0 }
        }
        let first = (0..<outSize).first(where: halving) ?? outSize
        var groups = 0
        while halving(first + 8 * groups) { groups += 1 }
        let laneOfOutput = [0, 1, 4, 5, 2, 3, 6, 7] // the lane order of sc_resample_stride2_groups
        var halvingWeights = [Float](repeating: 0, count: groups * taps * 8)
        for g in 0..<groups {
            for j in 0..<8 {
                let x = first + 8 * g + j
                for t in 0..<k.counts[x] { halvingWeights[(g * taps + t) * 8 + laneOfOutput[j]] = k.weights[x * k.stride + t] }
            }
        }
        let inside = k.starts.map { $0 + lanes <= inSize }
        steps = (0..<outSize).map { x in
            let end = x < first ? first : outSize // eight together never straddle the halving groups
            if x + 8 <= end && inside[x..<(x + 8)].allSatisfy({ $0 }) { return .eightInside }
            return inside[x] ? .inside : .atTheEnd
        }
        self.lanes = lanes
        self.padded = padded
        starts = k.starts
        counts = k.counts
        halvingFirst = first
        halvingGroups = groups
        halvingTaps = taps
        let set = 8 * taps
        if groups > 1 && (1..<groups).allSatisfy({ g in halvingWeights[(g * set)..<((g + 1) * set)].elementsEqual(halvingWeights[0..<set]) }) {
            self.halvingWeights = Array(halvingWeights[0..<set])
            halvingWeightsStep = 0
        } else {
            self.halvingWeights = halvingWeights
            halvingWeightsStep = set
        }
    }

    struct Pointers {
        let outSize: Int
        let lanes: Int
        let padded: UnsafePointer<Float>
        let starts: UnsafePointer<Int>
        let counts: UnsafePointer<Int>
        let steps: UnsafePointer<Step>
        let halvingFirst: Int
        let halvingGroups: Int
        let halvingTaps: Int
        let halvingWeights: UnsafePointer<Float>
        let halvingWeightsStep: Int

        /// Resamples one row (as many values as the kernel's input size) into `outSize` values.
        @inline(__always)
        func resampleRow(_ srow: UnsafePointer<Float>, into drow: UnsafeMutablePointer<Float>) {
            if halvingGroups == 0 {
                resampleSteps(srow, from: 0, to: outSize, into: drow)
                return
            }
            resampleSteps(srow, from: 0, to: halvingFirst, into: drow)
            sc_resample_stride2_groups(srow, starts + halvingFirst, halvingWeights, halvingWeightsStep, halvingTaps,
                                       halvingGroups, drow + halvingFirst)
            resampleSteps(srow, from: halvingFirst + 8 * halvingGroups, to: outSize, into: drow)
        }

        @inline(__always)
        private func resampleSteps(_ srow: UnsafePointer<Float>, from start: Int, to end: Int,
                                   into drow: UnsafeMutablePointer<Float>) {
            var x = start
            while x < end {
                switch steps[x] {
                case .eightInside:
                    // Reduced together: summing each output's eight lanes alone is a chain of
                    // shuffles and adds per output.
                    let sums = laneSums(dot(srow, x), dot(srow, x + 1), dot(srow, x + 2), dot(srow, x + 3),
                                        dot(srow, x + 4), dot(srow, x + 5), dot(srow, x + 6), dot(srow, x + 7))
                    store8(sums, drow + x)
                    x += 8
                case .inside:
                    drow[x] = laneSum(dot(srow, x))
                    x += 1
                case .atTheEnd:
                    let sx = srow + starts[x], wx = padded + x * lanes
                    var acc: Float = 0
                    for t in 0..<counts[x] { acc += wx[t] * sx[t] }
                    drow[x] = acc
                    x += 1
                }
            }
        }

        /// Output x's padded window times its weights, lane by lane: lane j sums taps j, j+8, ...
        @inline(__always)
        private func dot(_ srow: UnsafePointer<Float>, _ x: Int) -> SIMD8<Float> {
            let sx = srow + starts[x], wx = padded + x * lanes
            var acc = load8(sx) * load8(wx)
            var t = 8
            while t < lanes {
                acc += load8(sx + t) * load8(wx + t)
                t += 8
            }
            return acc
        }
    }

    func withPointers<T>(_ body: (Pointers) throws -> T) rethrows -> T {
        try padded.withUnsafeBufferPointer { p in
            try starts.withUnsafeBufferPointer { s in
                try counts.withUnsafeBufferPointer { c in
                    try steps.withUnsafeBufferPointer { st in
                        try halvingWeights.withUnsafeBufferPointer { hw in
                            // An empty array may have no storage: any non-nil pointer serves, nothing is read.
                            try body(Pointers(outSize: outSize, lanes: lanes, padded: p.baseAddress!,
                                              starts: s.baseAddress!, counts: c.baseAddress!, steps: st.baseAddress!,
                                              halvingFirst: halvingFirst, halvingGroups: halvingGroups,
                                              halvingTaps: halvingTaps, halvingWeights: hw.baseAddress ?? p.baseAddress!,
                                              halvingWeightsStep: halvingWeightsStep))
                        }
                    }
                }
            }
        }
    }
}

/// The sum of the eight lanes as a tree, ((v0 + v4) + (v1 + v5)) + ((v2 + v6) + (v3 + v7)): the
/// order `laneSums` gives each of its eight sums, so that an output has the same value whichever
/// of the two computes it.
@inline(__always) private func laneSum(_ v: SIMD8<Float>) -> Float {
    let halves = v.lowHalf + v.highHalf
    let pairs = halves.evenHalf + halves.oddHalf
    return pairs[0] + pairs[1]
}

/// `laneSum` of eight vectors at once, as one vector: the halves, pairs and final sums of
/// different vectors share shuffles and adds.
@inline(__always) private func laneSums(_ a0: SIMD8<Float>, _ a1: SIMD8<Float>, _ a2: SIMD8<Float>, _ a3: SIMD8<Float>,
                                        _ a4: SIMD8<Float>, _ a5: SIMD8<Float>, _ a6: SIMD8<Float>,
                                        _ a7: SIMD8<Float>) -> SIMD8<Float> {
    // Each step adds the even lanes to the odd ones of two vectors side by side.
    @inline(__always) func pairwise(_ x: SIMD4<Float>, _ y: SIMD4<Float>) -> SIMD4<Float> {
        SIMD4(lowHalf: x.evenHalf, highHalf: y.evenHalf) + SIMD4(lowHalf: x.oddHalf, highHalf: y.oddHalf)
    }
    let p01 = pairwise(a0.lowHalf + a0.highHalf, a1.lowHalf + a1.highHalf)
    let p23 = pairwise(a2.lowHalf + a2.highHalf, a3.lowHalf + a3.highHalf)
    let p45 = pairwise(a4.lowHalf + a4.highHalf, a5.lowHalf + a5.highHalf)
    let p67 = pairwise(a6.lowHalf + a6.highHalf, a7.lowHalf + a7.highHalf)
    return SIMD8(lowHalf: pairwise(p01, p23), highHalf: pairwise(p45, p67))
}

@inline(__always) private func load8(_ p: UnsafePointer<Float>) -> SIMD8<Float> {
    UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
}

@inline(__always) private func load8(_ p: UnsafeMutablePointer<Float>) -> SIMD8<Float> {
    UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
}

@inline(__always) private func store8(_ v: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD8<Float>.self)
}

/// Precomputed 1-D resampling weights: output i = sum over t < counts[i] of
/// weights[i*stride + t] * input[starts[i] + t]. Each row of weights sums to 1.
struct ResampleKernel {
    var starts: [Int]
    var counts: [Int]
    var weights: [Float]
    var stride: Int

    init(inSize: Int, outSize: Int, filter: ResizeFilter) {
        precondition(inSize > 0 && outSize > 0)
        let scale = Double(inSize) / Double(outSize)
        let filterScale = max(scale, 1) // widen the support when shrinking: antialiasing
        let support: Double
        switch filter {
        case .bicubic: support = 2 * filterScale
        case .area: support = filterScale / 2
        }
        stride = Int(support.rounded(.up)) * 2 + 2
        starts = [Int](repeating: 0, count: outSize)
        counts = [Int](repeating: 0, count: outSize)
        weights = [Float](repeating: 0, count: outSize * stride)
        var w = [Double](repeating: 0, count: stride)
        for i in 0..<outSize {
            let center = (Double(i) + 0.5) * scale // in input pixel units, pixel j spans [j, j+1)
            let lo = max(Int((center - support).rounded(.down)), 0)
            let hi = min(Int((center + support).rounded(.up)), inSize)
            var n = 0, total = 0.0
            var first = -1
            for j in lo..<max(lo, hi) {
                let wj: Double
                switch filter {
                case .bicubic:
                    wj = ResampleKernel.cubic((Double(j) + 0.5 - center) / filterScale)
                case .area:
                    wj = max(0, min(center + support, Double(j + 1)) - max(center - support, Double(j)))
                }
                if wj == 0 && first < 0 { continue } // trim leading zero taps
                if first < 0 { first = j }
                w[n] = wj
                n += 1
                total += wj
            }
            while n > 1 && w[n - 1] == 0 { n -= 1 } // trim trailing zero taps
            precondition(n <= stride)
            if n == 0 || total == 0 {
                // Unreachable for valid sizes; fall back to the nearest input pixel.
                starts[i] = min(max(Int(center), 0), inSize - 1)
                counts[i] = 1
                weights[i * stride] = 1
                continue
            }
            starts[i] = first
            counts[i] = n
            for t in 0..<n { weights[i * stride + t] = Float(w[t] / total) }
        }
    }

    /// Keys cubic convolution kernel with a = -0.5 (Catmull-Rom), support [-2, 2].
    static func cubic(_ x: Double) -> Double {
        let a = -0.5
        let x = abs(x)
        if x < 1 { return ((a + 2) * x - (a + 3)) * x * x + 1 }
        if x < 2 { return (((x - 5) * x + 8) * x - 4) * a }
        return 0
    }
}
