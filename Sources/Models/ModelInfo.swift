/// What a model file is, read from its safetensors header alone: for listing models without loading them.
public struct ModelInfo: Sendable, Equatable {
    /// The name jobs use: the file's stem.
    public let name: String
    /// The file's path.
    public let path: String
    /// `architecture` metadata (`microast`, `adain-vgg19`).
    public let architecture: String
    /// `feature` metadata of AdaIN VGG models (`relu4_1`, `relu3_1`); nil for others.
    public let feature: String?
    /// Number of weights (sum of all tensors' elements).
    public let parameterCount: Int
    /// The weights' licence, or nil when none is known (see `WeightsProvenance`).
    public let license: String?
    /// Where the weights come from (`source` metadata).
    public let source: String?
    /// The paper the network comes from (`paper` metadata).
    public let paper: String?
    /// Random weights made for benchmarks (`format=random`): never offered to users by name.
    public let isBenchmarkOnly: Bool

    /// Reads the header of the file at `path`; the name is the file's stem.
    public init(path: String) throws {
        let header = try SafeTensors.header(atPath: path)
        let file = path.split(separator: "/").last.map(String.init) ?? path
        name = file.hasSuffix(".safetensors") ? String(file.dropLast(".safetensors".count)) : file
        self.path = path
        architecture = header.metadata["architecture"] ?? "unknown"
        feature = architecture == "adain-vgg19" ? (header.metadata["feature"] ?? "relu4_1") : nil
        parameterCount = header.entries.values.reduce(0) { total, e in total + e.shape.reduce(1, *) }
        source = header.metadata["source"]
        paper = header.metadata["paper"]
        isBenchmarkOnly = header.metadata["format"] == "random"
        license = WeightsProvenance.license(metadata: header.metadata)
    }
}

/// Licences of the weight releases we know, keyed by the upstream repository that opens a file's
/// `source` metadata. The safetensors files carry their source but not their licence, and a
/// licence cannot be guessed from text: an unknown release has none (nil), never a default.
public enum WeightsProvenance {
    /// Upstream repository -> SPDX licence of its released weights.
    static let licenses: [String: String] = [
        "EndyWon/MicroAST": "MIT",
        "MingSun-Tse/Collaborative-Distillation": "MIT",
        "naoto0804/pytorch-AdaIN": "MIT",
    ]

    /// The `license` metadata when a file states one, else the known licence of its source release.
    public static func license(metadata: [String: String]) -> String? {
        if let stated = metadata["license"], !stated.isEmpty { return stated }
        guard let source = metadata["source"], let repo = source.split(separator: " ").first else { return nil }
        return licenses[String(repo)]
    }
}
