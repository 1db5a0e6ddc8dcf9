import Engine
import Foundation
import Models

/// The model files a deployment can use, gathered from an ordered list of directories (the first
/// directory holding a name wins) and loaded once each on first use. Random-weight benchmark
/// networks are left out unless the catalog is made for benchmarks; any file can still be named
/// by path.
public final class ModelCatalog: @unchecked Sendable {
    /// The model used when a request names none.
    public static let defaultModel = "microast"

    /// The directories searched, in order.
    public let directories: [String]
    /// The models offered by name, sorted by name.
    public let models: [ModelInfo]
    private let lock = NSLock()
    private var loaded: [String: StyleNetwork] = [:]

    /// How the networks' layers are built (benchmarks and tests pass their own).
    public let engineOptions: EngineOptions

    /// Scans `directories` (in order) for `*.safetensors` files; unreadable files are skipped.
    public init(directories: [String], includeBenchmarkOnly: Bool = false, engineOptions: EngineOptions = EngineOptions()) {
        self.directories = directories
        self.engineOptions = engineOptions
        var byName: [String: ModelInfo] = [:]
        for dir in directories {
            let files = ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).sorted()
            for file in files where file.hasSuffix(".safetensors") {
                guard let info = try? ModelInfo(path: dir + "/" + file) else { continue }
                if info.isBenchmarkOnly && !includeBenchmarkOnly { continue }
                if byName[info.name] == nil { byName[info.name] = info }
            }
        }
        models = byName.values.sorted { $0.name < $1.name }
    }

    /// A catalog of one directory.
    public convenience init(directory: String, includeBenchmarkOnly: Bool = false) {
        self.init(directories: [directory], includeBenchmarkOnly: includeBenchmarkOnly)
    }

    /// The directories to search, in order: `configured` (the first of `--models`,
    /// `STYLIST_MODELS`, config `models_dir`; it must exist), the bundled `models/` next to the
    /// executable (or in `../share/stylist/models` beside its `bin/`), `./models`, then
    /// `../shared/models`. Every existing one is kept, so a configured directory adds to the
    /// bundled models rather than hiding them.
    public static func searchPath(configured: String?, executablePath: String? = ModelCatalog.executablePath,
                                  workingDirectory: String = FileManager.default.currentDirectoryPath) throws -> [String] {
        func standardized(_ path: String) -> String {
            let absolute = path.hasPrefix("/") ? path : workingDirectory + "/" + path
            return URL(fileURLWithPath: absolute).standardizedFileURL.path
        }
        func isDirectory(_ path: String) -> Bool {
            var isDir: ObjCBool = false
            return FileManager.default.fileExists(atPath: path, isDirectory: &isDir) && isDir.boolValue
        }
        var candidates: [String] = []
        if let configured, !configured.isEmpty {
            guard isDirectory(standardized(configured)) else { throw ModelsDirectoryMissing(path: configured) }
            candidates.append(standardized(configured))
        }
        if let executablePath {
            let binDir = (executablePath as NSString).deletingLastPathComponent
            candidates += [binDir + "/models", binDir + "/../share/stylist/models"].map(standardized)
        }
        candidates += ["models", "../shared/models"].map(standardized)
        var seen = Set<String>()
        return candidates.filter { isDirectory($0) && seen.insert($0).inserted }
    }

    /// This process's executable (Linux `/proc/self/exe`, else argv[0]), with symlinks resolved.
    public static var executablePath: String? {
        if let resolved = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") { return resolved }
        return CommandLine.arguments.first.map { URL(fileURLWithPath: $0).resolvingSymlinksInPath().path }
    }

    /// Names of the models offered.
    public var availableModels: [String] { models.map(\.name) }

    /// The model offered under `name`, if any.
    public func info(named name: String) -> ModelInfo? { models.first { $0.name == name } }

    /// The file a name refers to: a catalog name, or a path to a `.safetensors` file.
    public func path(for name: String) -> String? {
        if name.contains("/") || name.hasSuffix(".safetensors") { return name }
        return info(named: name)?.path
    }

    /// The network for `name` (a catalog name or a file path), loading it on first use.
    /// Throws `PipelineError.unknownModel` when absent or unloadable.
    public func network(named name: String) throws -> StyleNetwork {
        lock.lock()
        if let n = loaded[name] { lock.unlock(); return n }
        lock.unlock()
        guard let path = path(for: name), FileManager.default.fileExists(atPath: path) else {
            if models.isEmpty {
                let searched = directories.isEmpty ? "no models directory exists" : "searched \(directories.joined(separator: ", "))"
                throw PipelineError.unknownModel("unknown model '\(name)': no model files found (\(searched)); run from the repository root or give a directory with --models / STYLIST_MODELS")
            }
            throw PipelineError.unknownModel("unknown model '\(name)' (available: \(availableModels.joined(separator: ", ")))")
        }
        let network: StyleNetwork
        do {
            network = try ModelLoader.load(path: path, options: engineOptions)
        } catch {
            throw PipelineError.unknownModel("model '\(name)' cannot be loaded: \(error)")
        }
        lock.lock(); defer { lock.unlock() }
        if let n = loaded[name] { return n }
        loaded[name] = network
        return network
    }
}

/// A configured models directory that does not exist: a deployment mistake, reported at start.
public struct ModelsDirectoryMissing: Error, CustomStringConvertible {
    /// The directory as configured.
    public let path: String
    public var description: String { "models directory \(path) does not exist" }
}
