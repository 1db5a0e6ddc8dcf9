import Foundation
import Models

/// The model files a deployment can use, found in one directory and loaded once each on first use.
public final class ModelCatalog: @unchecked Sendable {
    /// The model used when a request names none (SPEC §1).
    public static let defaultModel = "microast"

    /// The directory holding `*.safetensors` model files.
    public let directory: String
    private let lock = NSLock()
    private var loaded: [String: StyleNetwork] = [:]

    public init(directory: String) {
        self.directory = directory
    }

    /// The first existing directory among: an explicit setting, `STYLIST_MODELS`, `./models`, `../shared/models` (SPEC §5).
    public static func locateDirectory(explicit: String? = nil, environment: [String: String] = ProcessInfo.processInfo.environment) -> String? {
        var candidates: [String] = []
        if let explicit, !explicit.isEmpty { candidates.append(explicit) }
        if let env = environment["STYLIST_MODELS"], !env.isEmpty { candidates.append(env) }
        candidates += ["models", "../shared/models"]
        for c in candidates {
            var isDir: ObjCBool = false
            if FileManager.default.fileExists(atPath: c, isDirectory: &isDir), isDir.boolValue {
                return URL(fileURLWithPath: c).standardizedFileURL.path
            }
        }
        return nil
    }

    /// Model names (file stems) present in the directory.
    public var availableModels: [String] {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return files.filter { $0.hasSuffix(".safetensors") }.map { String($0.dropLast(".safetensors".count)) }.sorted()
    }

    /// The file a name refers to: a catalog name, or a path to a `.safetensors` file.
    public func path(for name: String) -> String {
        if name.contains("/") || name.hasSuffix(".safetensors") { return name }
        return directory + "/" + name + ".safetensors"
    }

    /// The network for `name`, loading it on first use. Throws `PipelineError.unknownModel` when absent.
    public func network(named name: String) throws -> StyleNetwork {
        lock.lock()
        if let n = loaded[name] { lock.unlock(); return n }
        lock.unlock()
        let path = path(for: name)
        guard FileManager.default.fileExists(atPath: path) else {
            throw PipelineError.unknownModel("unknown model '\(name)' (available: \(availableModels.joined(separator: ", ")))")
        }
        let network: StyleNetwork
        do {
            network = try ModelLoader.load(path: path)
        } catch {
            throw PipelineError.unknownModel("model '\(name)' cannot be loaded: \(error)")
        }
        lock.lock(); defer { lock.unlock() }
        if let n = loaded[name] { return n }
        loaded[name] = network
        return network
    }
}
