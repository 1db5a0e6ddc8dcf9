import CEngineSIMD

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
/// (phase q holds padded columns q, q+s, q+2s, ...), zero beyond the padded row. With `columns`,
/// strides 2 and 4 write only those phase columns (a Winograd task's share of the row).
@inline(__always)
func fillPaddedRow(row: UnsafePointer<Float>, width w: Int, pad p: Int, stride s: Int, phaseWidth: Int,
                   columns: Range<Int>? = nil, into dst: UnsafeMutablePointer<Float>) {
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
    let first = columns?.lowerBound ?? 0, end = min(phaseWidth, columns?.upperBound ?? phaseWidth)
    if s == 2 || s == 4 {
        // Blocks of 8s consecutive padded columns de-interleave into 8 per phase: straight from the
        // row inside it, from a reflected and zero-padded copy of the block at either end.
        let block = 8 * s
        var j0 = first
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 32) { buffer in
            let strip = buffer.baseAddress!
            while j0 + 8 <= end {
                let x0 = s * j0 - p                                   // the block's first input column
                if x0 >= 0 && x0 + block <= w {
                    deinterleave(row + x0, stride: s, into: dst + j0, phaseWidth: phaseWidth)
                } else if s * j0 < padded {
                    // Reflected left padding, row values, reflected right padding, zeros.
                    let rowStart = min(block, max(0, -x0)), rowEnd = max(rowStart, min(block, w - x0))
                    let dataEnd = max(rowEnd, min(block, padded - s * j0))
                    for k in 0..<rowStart { strip[k] = row[reflect(x0 + k, w)] }
                    (strip + rowStart).update(from: row + (x0 + rowStart), count: rowEnd - rowStart)
                    for k in rowEnd..<dataEnd { strip[k] = row[reflect(x0 + k, w)] }
                    if dataEnd < block { (strip + dataEnd).update(repeating: 0, count: block - dataEnd) }
                    deinterleave(UnsafePointer(strip), stride: s, into: dst + j0, phaseWidth: phaseWidth)
                } else {
                    break                                             // past the padded row: zeros below
                }
                j0 += 8
            }
        }
        if j0 < end { fillPhasesScalar(row: row, width: w, pad: p, stride: s, phaseWidth: phaseWidth, into: dst, from: j0, to: end) }
        return
    }
    fillPhasesScalar(row: row, width: w, pad: p, stride: s, phaseWidth: phaseWidth, into: dst, from: first, to: end)
}

/// Splits 8s consecutive floats (s = 2 or 4) into s phases of 8, phase q at `dst + q * phaseWidth`.
@inline(__always)
func deinterleave(_ src: UnsafePointer<Float>, stride s: Int, into dst: UnsafeMutablePointer<Float>, phaseWidth: Int) {
    if s == 2 {
        sx_deinterleave2(src, dst, dst + phaseWidth)
    } else {
        sx_deinterleave4(src, dst, dst + phaseWidth, dst + 2 * phaseWidth, dst + 3 * phaseWidth)
    }
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
