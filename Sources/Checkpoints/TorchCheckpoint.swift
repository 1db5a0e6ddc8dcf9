import Foundation

/// The tensors of one PyTorch checkpoint, read without Python: the zip format of torch >= 1.6
/// or the legacy pickle format, the state dict found inside any wrapper dict.
public struct TorchCheckpoint: Sendable {
    /// Where the checkpoint came from (its path), for messages and for telling files apart.
    public let name: String
    /// The state dict's tensors, in the order they were saved.
    public let tensors: [(name: String, tensor: TorchTensor)]
    private let index: [String: Int]

    /// Largest checkpoint accepted: well above VGG-19's 80 MB, far below exhausting memory.
    public static let maxFileSize = 2_000_000_000

    public init(contentsOf path: String) throws {
        let size = ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? Int) ?? 0
        guard size <= Self.maxFileSize else { throw CheckpointError("\(path): \(size) bytes is larger than the \(Self.maxFileSize) a checkpoint may be") }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw CheckpointError(FileManager.default.fileExists(atPath: path) ? "cannot read \(path)" : "no such file: \(path)")
        }
        try self.init(bytes: [UInt8](data), name: path)
    }

    /// Parses a checkpoint's bytes; `name` is used in messages.
    public init(bytes: [UInt8], name: String) throws {
        let tensors: [(String, TorchTensor)]
        if ZipArchive.isZip(bytes) {
            tensors = try ZipCheckpoint.read(bytes, name: name)
        } else if bytes.first == 0x80 {
            tensors = try LegacyCheckpoint.read(bytes, name: name)
        } else {
            throw CheckpointError("\(name): not a PyTorch checkpoint (neither a zip archive nor the legacy pickle format)")
        }
        self.name = name
        self.tensors = tensors.map { (name: $0.0, tensor: $0.1) }
        var index: [String: Int] = [:]
        for (i, t) in tensors.enumerated() { index[t.0] = i }
        self.index = index
    }

    public subscript(_ key: String) -> TorchTensor? { index[key].map { tensors[$0].tensor } }

    /// Tensor names in save order.
    public var keys: [String] { tensors.map(\.name) }
}
