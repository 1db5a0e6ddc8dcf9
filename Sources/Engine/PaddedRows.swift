// Input rows as the convolution kernels read them: reflection-padded and split into stride
// phases (so strided taps become contiguous loads), or packed into contiguous panels.

/// Copies `width` (a multiple of 8: a tile) consecutive values of each of `channels` rows (`stride`
/// floats apart) into a contiguous panel, so the micro-kernel's reduction reads memory sequentially.
/// Reads up to a tile past a short last tile: tensors keep 64 floats of slack after their last plane.
@inline(__always)
func packPanel(_ src: UnsafePointer<Float>, channels: Int, stride: Int, width: Int, into panel: UnsafeMutablePointer<Float>) {
    var s = src, d = panel
    for _ in 0..<channels {
        var i = 0
        while i < width { store8(load8(s + i), d + i); i += 8 }
        s += stride
        d += width
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
        // Columns j with q + j*s < padded hold data; the rest of the phase is zero, written as a fill
        // rather than a branch per element: Winograd's phases end in a long zero tail (whole 8-tile
        // groups plus slack), which on narrow layers is a large share of each row.
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
