import ImageCodecs
import Models

/// Why a stylization could not run. The service maps each case to its HTTP status.
public enum PipelineError: Error, CustomStringConvertible, Equatable {
    case invalidParameter(String)
    case unsupportedImage(String)
    case corruptImage(String)
    case imageTooLarge(String)
    case unknownModel(String)
    case canceled

    public var description: String {
        switch self {
        case .invalidParameter(let m), .unsupportedImage(let m), .corruptImage(let m), .imageTooLarge(let m), .unknownModel(let m): return m
        case .canceled: return "canceled"
        }
    }

    /// Maps codec errors onto pipeline errors, naming which input (`content`, `style 1`) was at fault.
    static func from(_ error: ImageCodecError, input: String) -> PipelineError {
        switch error {
        case .unsupportedFormat(let m): return .unsupportedImage("\(input): \(m)")
        case .corrupt(let m): return .corruptImage("\(input): \(m)")
        case .tooLarge(let w, let h, let limit): return .imageTooLarge("\(input): \(w)x\(h) exceeds the \(limit)-pixel limit")
        }
    }
}
