/// Why a PyTorch checkpoint could not be read or converted; the message names the file and the part at fault.
public struct CheckpointError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
