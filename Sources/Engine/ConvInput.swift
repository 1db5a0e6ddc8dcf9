import CEngineSIMD

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

    /// Starts loading into cache the source rows that logical rows `rows` (clamped to the image) of
    /// every channel are computed from. A layer calls it for its next task while it works on the
    /// current one: each plane's rows are short streams, a few KiB apart, that the hardware
    /// prefetcher finds too late when the previous layer's output has left the cache.
    func prefetch(logicalRows rows: Range<Int>) {
        let first = max(0, rows.lowerBound), end = min(height, rows.upperBound)
        guard first < end else { return }
        let source = sourceRows(for: first..<end)
        let localFirst = max(0, source.lowerBound - rowOffset), localEnd = min(tensor.height, source.upperBound - rowOffset)
        guard localFirst < localEnd else { return }
        let w = tensor.width
        for c in 0..<tensor.channels {
            let plane = tensor.plane(c)
            for r in localFirst..<localEnd {
                let row = plane + r * w
                var i = 0
                while i < w { sx_prefetch(row + i); i += 16 }
                sx_prefetch(row + w - 1)
            }
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
