/// What one style image contributes to a stylization: per-channel statistics (and, for MicroAST,
/// modulation signals) of its encoded features. Small, serialisable, and linear: a blend of
/// styles with weights w_i is exactly the weighted sum of their codes, which is how several styles are mixed.
public struct StyleCode: Codable, Sendable, Equatable {
    /// The network family that produced it (`adain-vgg19` or `microast`).
    public var architecture: String
    /// Named per-channel vectors, e.g. "mean", "std" (adain-vgg19) or "mean1", "std1", "w1", "b1", ... (microast).
    public var vectors: [String: [Float]]

    public init(architecture: String, vectors: [String: [Float]]) {
        self.architecture = architecture
        self.vectors = vectors
    }

    /// The weighted sum of codes of one architecture (weights used as given).
    public static func blend(_ parts: [(code: StyleCode, weight: Float)]) -> StyleCode {
        precondition(!parts.isEmpty, "blend of no styles")
        var out = StyleCode(architecture: parts[0].code.architecture, vectors: [:])
        for (key, first) in parts[0].code.vectors {
            var acc = [Float](repeating: 0, count: first.count)
            for (code, weight) in parts {
                let v = code.vectors[key]!
                for i in 0..<acc.count { acc[i] += weight * v[i] }
            }
            out.vectors[key] = acc
        }
        return out
    }

    func vector(_ key: String) -> [Float] {
        guard let v = vectors[key] else { preconditionFailure("style code lacks \(key)") }
        return v
    }
}

/// AdaIN's per-channel affine map: normalise by the content's statistics, apply the style's:
/// t = (c - mean_c) / std_c * std_s + mean_s  ==  c * scale + shift.
func adainAffine(contentMean: [Float], contentStd: [Float], styleMean: [Float], styleStd: [Float]) -> (scale: [Float], shift: [Float]) {
    var scale = [Float](repeating: 0, count: contentMean.count)
    var shift = scale
    for c in 0..<scale.count {
        scale[c] = styleStd[c] / contentStd[c]
        shift[c] = styleMean[c] - contentMean[c] * scale[c]
    }
    return (scale, shift)
}
