import ArgumentParser
import Foundation
import StylePipeline

/// `stylist models`: the models `stylize` and `serve` can use, and where each was found.
struct ModelsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "models",
        abstract: "List the available models and where they were found."
    )

    @Option(help: "An extra directory of model files, searched first (default: STYLIST_MODELS).")
    var models: String?

    @Flag(help: "Also list random-weight benchmark networks (usable by `stylist bench` only).")
    var all = false

    func run() throws {
        try reportingErrors {
            let catalog = try commandLineCatalog(models: models, includeBenchmarkOnly: all)
            guard !catalog.models.isEmpty else {
                throw CLIError("no models found (searched: \(catalog.directories.joined(separator: ", ")); use --models DIR)")
            }
            let rows = catalog.models.map { m -> [String] in
                let name = m.name + (m.name == ModelCatalog.defaultModel ? " (default)" : "")
                let arch = m.architecture + (m.feature.map { " \($0)" } ?? "") + (m.isBenchmarkOnly ? ", random weights" : "")
                return [name, arch, String(format: "%.2f M", Double(m.parameterCount) / 1e6), m.license ?? "unknown", m.path]
            }
            let header = ["model", "architecture", "params", "licence", "file"]
            let widths = (0..<header.count).map { i in ([header] + rows).map { $0[i].count }.max() ?? 0 }
            for row in [header] + rows {
                let cells = row.enumerated().map { i, cell in i == row.count - 1 ? cell : cell.padding(toLength: widths[i], withPad: " ", startingAt: 0) }
                print(cells.joined(separator: "  "))
            }
        }
    }
}
