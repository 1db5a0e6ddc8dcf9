/// A known family of checkpoints and how its tensor names map to ours (the safetensors names the Models module reads).
public enum CheckpointLayout: String, CaseIterable, Sendable {
    /// pytorch-AdaIN's `vgg_normalised.pth` + `decoder.pth` (nn.Sequential indices, any width).
    case adain
    /// MicroAST's content encoder, style encoder, modulator and decoder files.
    case microast
    /// Collaborative Distillation's small encoder (SE) and decoder (SD), `convXY` names.
    case cd16x
    /// The WCT release's `vgg_normalised_conv3_1` + `feature_invertor_conv3_1` pair (nn.Sequential indices).
    case wct

    /// Guesses the layout from tensor names (and, for nn.Sequential pairs, the decoder's depth).
    public static func detect(_ checkpoints: [TorchCheckpoint]) throws -> CheckpointLayout {
        let keys = Set(checkpoints.flatMap(\.keys))
        if keys.contains(where: { $0.hasSuffix(".conv_layer.weight") }) { return .microast }
        if keys.contains("conv0.weight") || keys.contains("conv11.weight") { return .cd16x }
        if keys.contains("0.weight") || keys.contains("1.weight") {
            // Both releases share the Sequential layout; WCT's pair stops at relu3_1, pytorch-AdaIN's at relu4_1.
            let decoder = checkpoints.first { $0["0.weight"] == nil }
            return decoder.flatMap { VGGSequential.stages(ofDecoder: $0) } == 3 ? .wct : .adain
        }
        let sample = checkpoints.flatMap(\.keys).prefix(4).joined(separator: ", ")
        throw CheckpointError("cannot tell which network these checkpoints hold (tensors: \(sample)...); use --layout (\(allCases.map(\.rawValue).joined(separator: ", ")))")
    }

    /// Our tensors and `__metadata__` from the checkpoints of this layout.
    func map(_ checkpoints: [TorchCheckpoint]) throws -> (tensors: [ConvertedWeights.Tensor], metadata: [String: String]) {
        switch self {
        case .microast: return try MicroASTLayout.map(checkpoints)
        case .adain, .wct: return try VGGSequential.map(checkpoints, layout: self)
        case .cd16x: return try CollaborativeDistillationLayout.map(checkpoints)
        }
    }
}

/// The adain-vgg19 network's conv names (as `AdaINVGG` reads them), shared by the VGG-based layouts.
enum VGGNames {
    /// Encoder convs from conv0 up to `relu{stages}_1`, in order.
    static func encoder(stages: Int) -> [String] {
        ["conv0", "conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1"] + (stages == 4 ? ["conv3_2", "conv3_3", "conv3_4", "conv4_1"] : [])
    }

    /// Decoder convs in run order: the encoder's mirror, named after the encoder conv each undoes.
    static func decoder(stages: Int) -> [String] { encoder(stages: stages).dropFirst().reversed() }

    /// `encoder.NAME.weight`/`.bias` and `decoder.NAME...` from source keys (`encoderKey(name)` gives a source module name).
    static func tensors(encoder: TorchCheckpoint, decoder: TorchCheckpoint, stages: Int,
                        encoderKey: (String) -> String, decoderKey: (String) -> String) throws -> [ConvertedWeights.Tensor] {
        var out: [ConvertedWeights.Tensor] = []
        func add(_ part: String, _ checkpoint: TorchCheckpoint, _ names: [String], _ key: (String) -> String) throws {
            for name in names {
                for suffix in ["weight", "bias"] {
                    let source = key(name) + "." + suffix
                    guard let t = checkpoint[source] else {
                        throw CheckpointError("\(checkpoint.name): missing tensor \(source) (the \(part)'s \(name).\(suffix))")
                    }
                    out.append(try ConvertedWeights.Tensor(name: "\(part).\(name).\(suffix)", from: t))
                }
            }
        }
        try add("encoder", encoder, Self.encoder(stages: stages), encoderKey)
        try add("decoder", decoder, Self.decoder(stages: stages), decoderKey)
        return out
    }

    static let adainPaper = "Huang & Belongie, Arbitrary Style Transfer in Real-time with Adaptive Instance Normalization, ICCV 2017"

    /// The engine's adain-vgg19 metadata.
    static func metadata(stages: Int, finalRelu: Bool, source: String, paper: String) -> [String: String] {
        ["architecture": "adain-vgg19", "feature": "relu\(stages)_1", "decoder_final_relu": finalRelu ? "true" : "false",
         "format": "pt", "source": source, "paper": paper]
    }
}
