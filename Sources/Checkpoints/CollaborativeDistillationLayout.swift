/// Collaborative Distillation's small encoder/decoder pair (`*SE*.pth`, `*SD*.pth`): modules named
/// `convXY` (`conv0`, `conv11`, ..., `conv41`), plus `convXY_aux` 1x1 convs that only served the
/// distillation loss and are dropped.
enum CollaborativeDistillationLayout {
    /// `conv3_1` -> `conv31`.
    static func sourceName(_ name: String) -> String { name.replacingOccurrences(of: "_", with: "") }

    static func map(_ checkpoints: [TorchCheckpoint]) throws -> (tensors: [ConvertedWeights.Tensor], metadata: [String: String]) {
        let encoders = checkpoints.filter { $0["conv0.weight"] != nil }, decoders = checkpoints.filter { $0["conv0.weight"] == nil }
        guard checkpoints.count == 2, encoders.count == 1, decoders.count == 1 else {
            throw CheckpointError("layout cd16x needs two checkpoints: the small encoder (SE, with conv0) and the small decoder (SD)")
        }
        let encoder = encoders[0], decoder = decoders[0]
        // The stage (feature layer) is the deepest convX1 the encoder has; the engine builds relu3_1 and relu4_1.
        let deepest = (1...9).last { encoder["conv\($0)1.weight"] != nil } ?? 0
        guard deepest == 3 || deepest == 4 else {
            throw CheckpointError("\(encoder.name): encoder of stage \(deepest) (conv\(deepest)1); only stages 3 and 4 (relu3_1, relu4_1) are supported")
        }
        guard decoder["conv\(deepest)1.weight"] != nil, decoder["conv\(deepest + 1)1.weight"] == nil else {
            throw CheckpointError("\(decoder.name): not the decoder of a stage-\(deepest) encoder (conv\(deepest)1 expected as its first conv)")
        }
        let tensors = try VGGNames.tensors(encoder: encoder, decoder: decoder, stages: deepest,
                                           encoderKey: sourceName, decoderKey: sourceName)
        let metadata = VGGNames.metadata(stages: deepest, finalRelu: true,
            source: "MingSun-Tse/Collaborative-Distillation trained_models/wct_se_16x_new{,_sd} stage \(deepest) (MIT)",
            paper: "Wang et al., Collaborative Distillation for Ultra-Resolution Universal Style Transfer, CVPR 2020")
        return (tensors, metadata)
    }
}
