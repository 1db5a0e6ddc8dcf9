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

    @Argument(help: "One or more style images (PNG or JPEG).")
    var styles: [String]

    @Option(name: .shortAndLong, help: "Output file; .jpg/.jpeg writes JPEG, anything else PNG.")
    var output: String

    @Option(help: "microast (default), adain-vgg19-cd16x, adain-vgg19-relu31, adain-vgg19-full-random, or a .safetensors path.")
    var model: String = ModelCatalog.defaultModel

    @Option(help: "Style strength in [0, 1].")
    var alpha: Float = 1

    @Option(name: .customLong("style-weights"), help: "Comma-separated weights, one per style, e.g. 0.7,0.3.")
    var styleWeights: String?

    @Flag(name: .customLong("preserve-color"), help: "Keep the content's colours.")
    var preserveColor = false

    @Option(name: .customLong("max-size"), help: "Longer side limit for content and styles, in pixels.")
    var maxSize: Int = 512

    @Option(help: "Directory of model files (default: STYLIST_MODELS, ./models, ../shared/models).")
    var models: String?

    func run() throws {
        try reportingErrors {
            var options = StylizeOptions()
            options.alpha = alpha
            options.preserveColor = preserveColor
            options.maxSize = maxSize
            let ext = (output as NSString).pathExtension.lowercased()
            options.format = (ext == "jpg" || ext == "jpeg") ? .jpeg : .png
            if let styleWeights {
                options.styleWeights = try styleWeights.split(separator: ",", omittingEmptySubsequences: false).map { part in
                    guard let v = Float(part.trimmingCharacters(in: .whitespaces)) else {
                        throw CLIError("--style-weights: '\(part)' is not a number")
                    }
                    return v
                }
            }
            try options.validate(styleCount: styles.count)

            guard let dir = ModelCatalog.locateDirectory(explicit: models) ?? (model.hasSuffix(".safetensors") ? "." : nil) else {
                throw CLIError("no models directory found (use --models DIR or STYLIST_MODELS)")
            }
            let network = try ModelCatalog(directory: dir).network(named: model)
            let contentImage = try Stylizer.decode(try readFile(content), input: "content \(content)")
            let styleImages = try styles.map { StyleInput.image(try Stylizer.decode(try readFile($0), input: "style \($0)")) }
            let result = try Stylizer(network: network).stylize(content: contentImage, styles: styleImages, options: options)
            let bytes = try Stylizer.encode(result.image, options: options)
            guard FileManager.default.createFile(atPath: output, contents: Data(bytes)) else {
                throw CLIError("cannot write \(output)")
            }
            print("wrote \(output): \(result.image.width)x\(result.image.height) \(options.format.rawValue), inference \(String(format: "%.3f", result.inferenceSeconds)) s (\(String(format: "%.1f", result.flops / 1e9)) GFLOP)")
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
