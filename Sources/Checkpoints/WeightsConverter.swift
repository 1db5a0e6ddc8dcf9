import Foundation
import Models

/// Tensors and metadata in our safetensors layout, converted from checkpoints.
public struct ConvertedWeights: Sendable {
    /// One output tensor (row-major float32).
    public struct Tensor: Sendable {
        public let name: String
        public let shape: [Int]
        public let values: [Float]

        init(name: String, from t: TorchTensor) throws {
            self.name = name
            shape = t.shape
            values = try t.floats()
        }
    }

    public let layout: CheckpointLayout
    public let tensors: [Tensor]
    public let metadata: [String: String]

    /// Number of weights.
    public var parameterCount: Int { tensors.reduce(0) { $0 + $1.values.count } }

    /// The safetensors file's bytes (Models' writer: sorted names, 8-byte-aligned header).
    public func serialized() throws -> [UInt8] {
        try SafeTensors.serialize(tensors.map { ($0.name, $0.shape, $0.values) }, metadata: metadata)
    }
}

/// Converts PyTorch checkpoints into a safetensors file the engine loads (`stylist convert-weights`).
public enum WeightsConverter {
    /// Reads the checkpoints at `paths` and maps them with `layout` (detected when nil).
    public static func convert(paths: [String], layout: CheckpointLayout? = nil) throws -> ConvertedWeights {
        try convert(paths.map { try TorchCheckpoint(contentsOf: $0) }, layout: layout)
    }

    /// Maps already-read checkpoints with `layout` (detected when nil).
    public static func convert(_ checkpoints: [TorchCheckpoint], layout: CheckpointLayout? = nil) throws -> ConvertedWeights {
        guard !checkpoints.isEmpty else { throw CheckpointError("no checkpoints given") }
        let layout = try layout ?? CheckpointLayout.detect(checkpoints)
        let (tensors, metadata) = try layout.map(checkpoints)
        var seen = Set<String>()
        for t in tensors where !seen.insert(t.name).inserted { throw CheckpointError("tensor \(t.name) given twice") }
        return ConvertedWeights(layout: layout, tensors: tensors, metadata: metadata)
    }

    /// Serializes `weights` and builds the network from the result exactly as the engine will, so
    /// a file with a missing tensor or a wrong shape is refused here, not when the service loads it.
    public static func validatedBytes(_ weights: ConvertedWeights) throws -> [UInt8] {
        let bytes = try weights.serialized()
        let st = try SafeTensors(bytes: bytes, name: "converted weights")
        do {
            switch st.metadata["architecture"] {
            case "microast": _ = try MicroAST(weights: st)
            case "adain-vgg19": _ = try AdaINVGG(weights: st)
            default: throw WeightsError("no network for architecture \(st.metadata["architecture"] ?? "none")")
            }
        } catch let e as WeightsError {
            throw CheckpointError("the converted \(weights.layout.rawValue) weights do not build the network: \(e.description)")
        }
        return bytes
    }

    /// Converts and writes `output` atomically (a failed conversion leaves no partial file).
    @discardableResult
    public static func convert(paths: [String], layout: CheckpointLayout? = nil, output: String) throws -> ConvertedWeights {
        let weights = try convert(paths: paths, layout: layout)
        let bytes = try validatedBytes(weights)
        do {
            try Data(bytes).write(to: URL(fileURLWithPath: output), options: .atomic)
        } catch {
            throw CheckpointError("cannot write \(output): \(error.localizedDescription)")
        }
        return weights
    }
}
