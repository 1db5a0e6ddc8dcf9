/// pytorch-AdaIN's and the WCT release's nn.Sequential checkpoints: tensors are named by module
/// index (`9.weight`), so the indices of each conv follow from the architecture, as in
/// pytorch-AdaIN's net.py: encoder conv0 at 0, then (pad, conv, relu) per conv with a max pool
/// after each stage's last conv; decoder (pad, conv, relu) per conv with an upsample after
/// conv4_1, conv3_1 and conv2_1, and no relu after the last.
enum VGGSequential {
    /// Module index of each encoder conv (up to `relu{stages}_1`).
    static func encoderIndices(stages: Int) -> [String: Int] {
        var out: [String: Int] = ["conv0": 0]
        var index = 1
        for name in VGGNames.encoder(stages: stages).dropFirst() {
            out[name] = index + 1
            index += 3
            if ["conv1_2", "conv2_2", "conv3_4"].contains(name) { index += 1 } // pool
        }
        return out
    }

    /// Module index of each decoder conv for a decoder from `relu{stages}_1`.
    static func decoderIndices(stages: Int) -> [String: Int] {
        var out: [String: Int] = [:]
        var index = 0
        for name in VGGNames.decoder(stages: stages) {
            out[name] = index + 1
            index += 3
            if ["conv4_1", "conv3_1", "conv2_1"].contains(name) { index += 1 } // upsample
        }
        return out
    }

    /// Conv module indices present in a checkpoint (`N.weight`).
    static func convIndices(_ c: TorchCheckpoint) -> [Int] {
        c.keys.compactMap { k in k.hasSuffix(".weight") ? Int(k.dropLast(".weight".count)) : nil }.sorted()
    }

    /// 4 or 3 when the decoder's convs sit exactly where a decoder from relu4_1 or relu3_1 has them.
    static func stages(ofDecoder c: TorchCheckpoint) -> Int? {
        let found = convIndices(c)
        return [4, 3].first { found == decoderIndices(stages: $0).values.sorted() }
    }

    static func map(_ checkpoints: [TorchCheckpoint], layout: CheckpointLayout) throws -> (tensors: [ConvertedWeights.Tensor], metadata: [String: String]) {
        let what = layout == .adain ? "pytorch-AdaIN's vgg_normalised.pth and decoder.pth" : "the WCT vgg_normalised and feature_invertor pair"
        let encoders = checkpoints.filter { $0["0.weight"] != nil }, decoders = checkpoints.filter { $0["0.weight"] == nil }
        guard checkpoints.count == 2, encoders.count == 1, decoders.count == 1 else {
            throw CheckpointError("layout \(layout.rawValue) needs two checkpoints, \(what): an encoder (with 0.weight) and a decoder")
        }
        let encoder = encoders[0], decoder = decoders[0]
        guard let stages = stages(ofDecoder: decoder) else {
            throw CheckpointError("\(decoder.name): conv indices \(convIndices(decoder)) are not a decoder from relu4_1 \(decoderIndices(stages: 4).values.sorted()) or relu3_1 \(decoderIndices(stages: 3).values.sorted())")
        }
        let enc = encoderIndices(stages: stages), dec = decoderIndices(stages: stages)
        // vgg_normalised.pth goes on to conv5_4: the layers past the feature layer are not used.
        let tensors = try VGGNames.tensors(encoder: encoder, decoder: decoder, stages: stages,
                                           encoderKey: { String(enc[$0]!) }, decoderKey: { String(dec[$0]!) })
        let metadata: [String: String]
        switch layout {
        case .wct:
            metadata = VGGNames.metadata(stages: stages, finalRelu: false,
                source: "pietrocarbo/deep-transfer models/autoencoder_vgg19/vgg19_\(stages) (Apache-2.0; Li et al. WCT release): vgg_normalised to relu\(stages)_1 and its inverter",
                paper: VGGNames.adainPaper)
        default:
            metadata = VGGNames.metadata(stages: stages, finalRelu: false,
                source: "naoto0804/pytorch-AdaIN models/vgg_normalised.pth + decoder.pth (MIT)", paper: VGGNames.adainPaper)
        }
        return (tensors, metadata)
    }
}
