/// MicroAST's release: four state dicts (content encoder, style encoder, modulator, decoder) whose
/// tensors keep their names under a prefix per sub-network. The two encoders have identical
/// tensor names, so only the file names (`*content_encoder*`, `*style_encoder*`) tell them apart.
enum MicroASTLayout {
    static let prefixes = ["content_encoder", "style_encoder", "modulator", "decoder"]

    /// The sub-network a checkpoint is, from its tensor names and (encoders) its file name.
    static func role(of c: TorchCheckpoint) throws -> String {
        if c["dec1.conv1.conv_layer.weight"] != nil { return "decoder" }
        if c["weight1.0.conv_layer.weight"] != nil { return "modulator" }
        guard c["enc1.0.conv_layer.weight"] != nil else {
            throw CheckpointError("\(c.name): not a MicroAST checkpoint (no enc1, dec1 or weight1 tensors)")
        }
        let file = (c.name.split(separator: "/").last.map(String.init) ?? c.name).lowercased()
        let content = file.contains("content"), style = file.contains("style")
        guard content != style else {
            throw CheckpointError("\(c.name): cannot tell the content encoder from the style encoder (same tensor names); name the files *content_encoder* and *style_encoder* as MicroAST releases them")
        }
        return content ? "content_encoder" : "style_encoder"
    }

    static func map(_ checkpoints: [TorchCheckpoint]) throws -> (tensors: [ConvertedWeights.Tensor], metadata: [String: String]) {
        var byRole: [String: TorchCheckpoint] = [:]
        for c in checkpoints {
            let r = try role(of: c)
            if let other = byRole[r] { throw CheckpointError("two MicroAST \(r) checkpoints: \(other.name) and \(c.name)") }
            byRole[r] = c
        }
        let missing = prefixes.filter { byRole[$0] == nil }
        guard missing.isEmpty else {
            throw CheckpointError("layout microast needs four checkpoints; missing: \(missing.joined(separator: ", "))")
        }
        var tensors: [ConvertedWeights.Tensor] = []
        for p in prefixes {
            for (key, t) in byRole[p]!.tensors { tensors.append(try ConvertedWeights.Tensor(name: p + "." + key, from: t)) }
        }
        let metadata = ["architecture": "microast", "format": "pt",
                        "source": "EndyWon/MicroAST models/*_iter_160000.pth.tar (MIT)",
                        "paper": "Wang et al., MicroAST: Towards Super-Fast Ultra-Resolution Arbitrary Style Transfer, AAAI 2023"]
        return (tensors, metadata)
    }
}
