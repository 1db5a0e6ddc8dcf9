import Foundation
import ImageCodecs

/// Colour preservation (`preserve_color`): gives the style image the content's RGB mean and covariance with
/// x' = Cc^(1/2) Cs^(-1/2) (x - ms) + mc, using symmetric matrix square roots, so the stylized
/// result keeps the photo's colours.
public enum ColorTransfer {
    /// The style image recoloured to the content's colour statistics.
    public static func matchColors(of style: PlanarImage, to content: PlanarImage) -> PlanarImage {
        let (mc, cc) = statistics(content)
        let (ms, cs) = statistics(style)
        let eps = 1e-5
        let a = multiply(symmetricPower(cc, 0.5, eps: eps), symmetricPower(cs, -0.5, eps: eps))
        var out = style
        let n = style.planeSize
        style.pixels.withUnsafeBufferPointer { src in
            out.pixels.withUnsafeMutableBufferPointer { dst in
                for i in 0..<n {
                    let d = [Double(src[i]) - ms[0], Double(src[n + i]) - ms[1], Double(src[2 * n + i]) - ms[2]]
                    for r in 0..<3 {
                        let v = a[r][0] * d[0] + a[r][1] * d[1] + a[r][2] * d[2] + mc[r]
                        dst[r * n + i] = Float(v)   // not clamped: clamping would undo the covariance match
                    }
                }
            }
        }
        return out
    }

    /// Per-channel mean and 3x3 covariance of an RGB image.
    static func statistics(_ image: PlanarImage) -> ([Double], [[Double]]) {
        let n = image.planeSize
        var mean = [0.0, 0.0, 0.0]
        var cov = [[Double]](repeating: [0, 0, 0], count: 3)
        image.pixels.withUnsafeBufferPointer { p in
            for c in 0..<3 {
                var s = 0.0
                for i in 0..<n { s += Double(p[c * n + i]) }
                mean[c] = s / Double(n)
            }
            for r in 0..<3 {
                for c in r..<3 {
                    var s = 0.0
                    for i in 0..<n { s += (Double(p[r * n + i]) - mean[r]) * (Double(p[c * n + i]) - mean[c]) }
                    cov[r][c] = s / Double(max(n - 1, 1))
                    cov[c][r] = cov[r][c]
                }
            }
        }
        return (mean, cov)
    }

    /// M^p for a symmetric positive semi-definite 3x3 matrix (eigenvalues floored at eps), via Jacobi rotations.
    static func symmetricPower(_ m: [[Double]], _ p: Double, eps: Double) -> [[Double]] {
        var a = m
        var v: [[Double]] = [[1, 0, 0], [0, 1, 0], [0, 0, 1]]
        for _ in 0..<64 {
            var off = 0.0
            for i in 0..<3 { for j in 0..<3 where i != j { off += a[i][j] * a[i][j] } }
            if off < 1e-30 { break }
            for (pi, qi) in [(0, 1), (0, 2), (1, 2)] where abs(a[pi][qi]) > 1e-300 {
                let theta = (a[qi][qi] - a[pi][pi]) / (2 * a[pi][qi])
                let t = (theta >= 0 ? 1.0 : -1.0) / (abs(theta) + (theta * theta + 1).squareRoot())
                let c = 1 / (t * t + 1).squareRoot(), s = t * c
                for k in 0..<3 {   // A = J^T A J
                    let akp = a[k][pi], akq = a[k][qi]
                    a[k][pi] = c * akp - s * akq
                    a[k][qi] = s * akp + c * akq
                }
                for k in 0..<3 {
                    let apk = a[pi][k], aqk = a[qi][k]
                    a[pi][k] = c * apk - s * aqk
                    a[qi][k] = s * apk + c * aqk
                }
                for k in 0..<3 {
                    let vkp = v[k][pi], vkq = v[k][qi]
                    v[k][pi] = c * vkp - s * vkq
                    v[k][qi] = s * vkp + c * vkq
                }
            }
        }
        let lambda = (0..<3).map { pow(max(a[$0][$0], eps), p) }
        var out = [[Double]](repeating: [0, 0, 0], count: 3)
        for i in 0..<3 { for j in 0..<3 { for k in 0..<3 { out[i][j] += v[i][k] * lambda[k] * v[j][k] } } }
        return out
    }

    static func multiply(_ a: [[Double]], _ b: [[Double]]) -> [[Double]] {
        var out = [[Double]](repeating: [0, 0, 0], count: 3)
        for i in 0..<3 { for j in 0..<3 { for k in 0..<3 { out[i][j] += a[i][k] * b[k][j] } } }
        return out
    }
}
