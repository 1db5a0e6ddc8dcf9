import Engine
import Foundation
import StylePipeline

/// The CLI's model catalog: `--models`, else `STYLIST_MODELS`, then the bundled and shared
/// directories (`ModelCatalog.searchPath`). The config file is the server's, not the CLI's.
func commandLineCatalog(models: String?, includeBenchmarkOnly: Bool = false, engineOptions: EngineOptions = EngineOptions(),
                        environment: [String: String] = ProcessInfo.processInfo.environment) throws -> ModelCatalog {
    let configured = models ?? environment["STYLIST_MODELS"].flatMap { $0.isEmpty ? nil : $0 }
    return ModelCatalog(directories: try ModelCatalog.searchPath(configured: configured), includeBenchmarkOnly: includeBenchmarkOnly,
                        engineOptions: engineOptions)
}
