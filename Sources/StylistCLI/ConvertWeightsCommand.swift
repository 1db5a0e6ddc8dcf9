import ArgumentParser
import Checkpoints
import Foundation

extension CheckpointLayout: ExpressibleByArgument {}

/// `stylist convert-weights IN... -o OUT.safetensors`: PyTorch checkpoints to our safetensors layout, no Python.
struct ConvertWeightsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "convert-weights",
        abstract: "Convert PyTorch checkpoints (.pth, .pth.tar) to a safetensors model file.",
        discussion: """
        Layouts: adain (pytorch-AdaIN vgg_normalised.pth + decoder.pth), microast (the four MicroAST files), \
        cd16x (Collaborative Distillation SE + SD), wct (WCT vgg_normalised_conv3_1 + feature_invertor_conv3_1). \
        Reads the legacy and zip formats of torch.save; never runs code from the files.
        """
    )

    @Argument(help: "The checkpoints of one network (all files of its layout).")
    var inputs: [String]

    @Option(name: .shortAndLong, help: "Output file (.safetensors).")
    var output: String

    @Option(help: "Force the layout (default: detected from the tensor names and shapes).")
    var layout: CheckpointLayout?

    func run() throws {
        try reportingErrors {
            guard output.hasSuffix(".safetensors") else { throw CLIError("-o \(output): the output must end in .safetensors") }
            let weights = try WeightsConverter.convert(paths: inputs, layout: layout, output: output)
            let feature = weights.metadata["feature"].map { " \($0)" } ?? ""
            print("wrote \(output): \(weights.layout.rawValue) -> \(weights.metadata["architecture"] ?? "?")\(feature), " +
                  "\(weights.tensors.count) tensors, \(String(format: "%.2f", Double(weights.parameterCount) / 1e6)) M parameters")
        }
    }
}
