import Engine
import Foundation

/// Loads a network from a safetensors file, choosing the architecture from its metadata.
public enum ModelLoader {
    /// The network described by `path`'s `__metadata__.architecture`, its layers built with `options`.
    public static func load(path: String, options: EngineOptions = EngineOptions()) throws -> StyleNetwork {
        var st = try SafeTensors(contentsOf: path)
        st.engineOptions = options
        switch st.metadata["architecture"] {
        case "microast": return try MicroAST(weights: st)
        case "adain-vgg19": return try AdaINVGG(weights: st)
        case let other?: throw WeightsError("\(path): unknown architecture \(other) (expected microast or adain-vgg19)")
        case nil: throw WeightsError("\(path): no architecture in __metadata__")
        }
    }
}
