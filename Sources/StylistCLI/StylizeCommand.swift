import ArgumentParser
import Engine
import Foundation
import ImageCodecs
import StylePipeline

/// `stylist stylize CONTENT STYLE [STYLE...] -o OUT`: one image, no server.
struct StylizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stylize",
        abstract: "Stylize one content image with one or more style images."
    )

    @Argument(help: "The content image (PNG or JPEG).")
    var content: String

    @Argument(help: "One or more style images (PNG or JPEG); with --mask, exactly two.")
    var styles: [String]

    @Option(name: .shortAndLong, help: "Output file: .png writes PNG, .jpg or .jpeg writes JPEG.")
    var output: String

    @Option(help: "A model name from `stylist models` (default microast), or a .safetensors path.")
    var model: String = ModelCatalog.defaultModel

    @Option(help: "Style strength in [0, 1].")
    var alpha: Float = 1

    @Option(name: .customLong("style-weights"), help: "Comma-separated weights, one per style, e.g. 0.7,0.3.")
    var styleWeights: String?

    @Option(help: "A mask image (PNG or JPEG, any size) for exactly two styles: the first where it is light, the second where it is dark.")
    var mask: String?

    @Flag(name: .customLong("preserve-color"), help: "Keep the content's colours.")
    var preserveColor = false

    @Option(name: .customLong("max-size"), help: "Longer side limit for content and styles, in pixels.")
    var maxSize: Int = 512

    @Option(help: "An extra directory of model files, searched before the bundled models (default: STYLIST_MODELS).")
    var models: String?

    @Flag(name: .shortAndLong, help: "No progress bar (there is none when stderr is not a terminal either).")
    var quiet = false

    @Flag(name: .shortAndLong, help: "Print the time of each stage (read, decode, resize, style encode, network, encode, write).")
    var verbose = false

    func run() throws {
        try reportingErrors {
            var options = StylizeOptions()
            options.alpha = alpha
            options.preserveColor = preserveColor
            options.maxSize = maxSize
            let ext = (output as NSString).pathExtension.lowercased()
            guard ["png", "jpg", "jpeg"].contains(ext) else {
                throw CLIError("-o \(output): the output must end in .png, .jpg or .jpeg")
            }
            options.format = (ext == "jpg" || ext == "jpeg") ? .jpeg : .png
            if let styleWeights {
                options.styleWeights = try styleWeights.split(separator: ",", omittingEmptySubsequences: false).map { part in
                    guard let v = Float(part.trimmingCharacters(in: .whitespaces)) else {
                        throw CLIError("--style-weights: '\(part)' is not a number")
                    }
                    return v
                }
            }
            if mask != nil {
                guard styles.count == 2 else { throw CLIError("--mask needs exactly two styles (white: the first, dark: the second), got \(styles.count)") }
                guard styleWeights == nil else { throw CLIError("--mask and --style-weights cannot be combined: the mask chooses the style at each place") }
            }
            try options.validate(styleCount: styles.count, masked: mask != nil)

            let network = try commandLineCatalog(models: models).network(named: model)
            // The service's path: every input read, then decoded side by side straight to max-size.
            var stages = StageTimings()
            let files = try stages.time("read") {
                try ([("content", content)] + styles.map { ("style", $0) }).map { (bytes: try readFile($0.1), input: "\($0.0) \($0.1)") }
            }
            let images = try stages.time("decode") { try Stylizer.decodeAll(files, fittingTo: maxSize) }
            let maskBytes = try mask.map { path in try stages.time("read") { try readFile(path) } }
            let maskRegions = try maskBytes.map { bytes in try stages.time("decode") { try Stylizer.decodeMask(bytes, input: "mask \(mask!)") } }
            EngineMemory.beginRun()
            let ctx = RunContext()
            let bar = !quiet && isatty(STDERR_FILENO) != 0 ? ProgressBar(label: "stylizing") : nil
            if let bar { ctx.onProgress = { bar.show($0) } }
            let result = try Stylizer(network: network).stylize(content: images[0], styles: images.dropFirst().map { .image($0) },
                                                                mask: maskRegions, options: options, ctx: ctx)
            bar?.finish()
            stages.add(result.stages)
            let bytes = try stages.time("encode") { try Stylizer.encode(result, options: options) }
            try stages.time("write") {
                guard FileManager.default.createFile(atPath: output, contents: Data(bytes)) else {
                    throw CLIError("cannot write \(output)")
                }
            }
            print("wrote \(output): \(result.width)x\(result.height) \(options.format.rawValue), inference \(String(format: "%.3f", result.inferenceSeconds)) s (\(String(format: "%.1f", result.flops / 1e9)) GFLOP)")
            if verbose {
                print("stages: \(stages.summary); total \(String(format: "%.1f", stages.total * 1000)) ms")
            }
        }
    }
}

/// The file's bytes, or a one-line error naming it.
func readFile(_ path: String) throws -> [UInt8] {
    guard let data = FileManager.default.contents(atPath: path) else {
        throw CLIError(FileManager.default.fileExists(atPath: path) ? "cannot read \(path)" : "no such file: \(path)")
    }
    return [UInt8](data)
}
