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
        let out = [Float](unsafeUninitializedCapacity: 3 * w * outH) { buf, count in
            pixels.withUnsafeBufferPointer { src in
                k.weights.withUnsafeBufferPointer { wts in
                    let s = src.baseAddress!, d = buf.baseAddress!, wp = wts.baseAddress!
                    for p in 0..<3 {
                        let sp = s + p * w * h, dp = d + p * w * outH
                        for y in 0..<outH {
                            // Eight columns at a time summed over every tap in registers: one
                            // write per output value however many taps there are.
                            let drow = dp + y * w, srow0 = sp + k.starts[y] * w
                            let taps = k.counts[y], wy = wp + y * k.stride
                            var x = 0
                            while x + 8 <= w {
                                var acc = SIMD8<Float>(repeating: wy[0]) * load8(srow0 + x)
                                for t in 1..<max(taps, 1) {
                                    acc += SIMD8<Float>(repeating: wy[t]) * load8(srow0 + t * w + x)
                                }
                                store8(acc, drow + x)
                                x += 8
                            }
                            while x < w {
                                var acc: Float = 0
                                for t in 0..<taps { acc += wy[t] * srow0[t * w + x] }
                                drow[x] = acc
                                x += 1
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
        let k = ResampleKernel(inSize: width, outSize: outW, filter: filter)
        let w = width, rows = 3 * height // the three planes are just 3*height rows here
        // Each output is a dot product of its taps, zero-padded to whole vectors of eight: one
        // vector multiply per eight taps where the padded window stays inside the row.
        let lanes = (max(k.counts.max() ?? 1, 1) + 7) / 8 * 8
        var padded = [Float](repeating: 0, count: outW * lanes)
        for x in 0..<outW {
            for t in 0..<k.counts[x] { padded[x * lanes + t] = k.weights[x * k.stride + t] }
        }
        let out = [Float](unsafeUninitializedCapacity: rows * outW) { buf, count in
            pixels.withUnsafeBufferPointer { src in
                padded.withUnsafeBufferPointer { wts in
                    k.starts.withUnsafeBufferPointer { starts in
                        k.counts.withUnsafeBufferPointer { counts in
                            let s = src.baseAddress!, d = buf.baseAddress!, wp = wts.baseAddress!
                            for r in 0..<rows {
                                let srow = s + r * w, drow = d + r * outW
                                for x in 0..<outW {
                                    let sx = srow + starts[x], wx = wp + x * lanes
                                    if starts[x] + lanes <= w {
                                        var acc = load8(sx) * load8(wx)
                                        var t = 8
                                        while t < lanes {
                                            acc += load8(sx + t) * load8(wx + t)
                                            t += 8
                                        }
                                        drow[x] = acc.sum()
                                    } else {
                                        var acc: Float = 0
                                        for t in 0..<counts[x] { acc += wx[t] * sx[t] }
                                        drow[x] = acc
                                    }
                                }
                            }
                        }
                    }
                }
            }
            count = rows * outW
        }
        return PlanarImage(width: outW, height: height, pixels: out)
    }
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
