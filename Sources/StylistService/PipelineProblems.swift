import StylePipeline

extension PipelineError {
    /// The HTTP status and problem title a client sees for this failure (the pipeline itself
    /// knows nothing of HTTP).
    var problem: (status: Int, title: String) {
        switch self {
        case .invalidParameter: return (400, "Invalid parameter")
        case .unknownModel: return (400, "Invalid parameter")
        case .unsupportedImage: return (415, "Unsupported image")
        case .corruptImage: return (422, "Corrupt image")
        case .imageTooLarge: return (413, "Image too large")
        case .canceled: return (409, "Canceled")
        }
    }
}
