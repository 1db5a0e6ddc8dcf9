import Engine

/// A chain of convolutions run over horizontal bands of its final output. For each band every stage
/// computes exactly the rows the next one reads (halos follow from kernel, stride, padding and 2x
/// upsampling), so only bands of the large full- and half-resolution activations ever exist.
/// The result equals the unbanded chain: same kernels, same reflection at the true image edges.
struct BandedChain {
    /// A convolution and how it sees its input (identity or virtually upsampled).
    struct Stage {
        let layer: Conv2DLayer
        let mode: ConvInput.Mode
    }

    let name: String
    let stages: [Stage]
    /// Layer kind reported for the banded run (benchmarks aggregate dense 3x3 time by kind).
    var kind: String = ""

    /// Per-stage (source height, logical input height, output height) for an input `height` rows tall,
    /// and the output width.
    private func geometry(height: Int, width: Int) -> (heights: [Int], width: Int) {
        var heights = [height]
        var w = width
        for st in stages {
            let scale = st.mode == .identity ? 1 : 2
            let out = st.layer.conv.outputSize(height: heights.last! * scale, width: w * scale)
            heights.append(out.height)
            w = out.width
        }
        return (heights, w)
    }

    /// FLOPs and output size for an input of `size`.
    func plan(_ size: Size) -> (flops: Double, size: Size) {
        var s = size, total = 0.0
        for st in stages {
            let scale = st.mode == .identity ? 1 : 2
            let r = st.layer.plan(Size(height: s.height * scale, width: s.width * scale))
            total += r.flops
            s = r.size
        }
        return (total, s)
    }

    /// Runs the chain on the whole `input`, `bandRows` output rows at a time (nil: unbanded).
    func callAsFunction(_ input: Tensor, bandRows: Int?, _ ctx: RunContext) throws -> Tensor {
        guard let bandRows else {
            var x = input
            for st in stages {
                x = st.mode == .identity ? try st.layer(x, ctx) : try st.layer.upsampled(x, st.mode, ctx)
            }
            return x
        }
        let (heights, outWidth) = geometry(height: input.height, width: input.width)
        let n = stages.count
        let flops = plan(Size(height: input.height, width: input.width)).flops
        return try ctx.layer(name + " (bands of \(bandRows) rows)", flops: flops, kind: kind) {
            let result = Tensor(channels: stages[n - 1].layer.conv.outChannels, height: heights[n], width: outWidth)
            var a = 0
            while a < heights[n] {
                try ctx.checkCancellation()
                let b = min(a + bandRows, heights[n])
                // Backwards: the rows each stage must produce so the next can produce its own.
                var need = [Range<Int>](repeating: 0..<0, count: n + 1)
                need[n] = a..<b
                for i in stride(from: n - 1, through: 0, by: -1) {
                    let view = ConvInput(input, mode: stages[i].mode, rowOffset: 0, fullHeight: heights[i])
                    let logical = stages[i].layer.conv.inputRows(for: need[i + 1], inputHeight: view.height)
                    need[i] = view.sourceRows(for: logical)
                }
                // Forwards, band by band.
                var current = ConvInput(input, mode: stages[0].mode, rowOffset: 0, fullHeight: heights[0])
                var band = input
                for i in 0..<n {
                    band = stages[i].layer.conv.band(current, rows: need[i + 1])
                    if i + 1 < n {
                        current = ConvInput(band, mode: stages[i + 1].mode, rowOffset: need[i + 1].lowerBound, fullHeight: heights[i + 1])
                    }
                }
                for c in 0..<result.channels {
                    (result.plane(c) + a * outWidth).update(from: band.plane(c), count: (b - a) * outWidth)
                }
                a = b
            }
            return result
        }
    }
}
