import ArgumentParser
import Foundation

/// `stylist`: the service, one-shot stylization, and the engine benchmark.
struct StylistCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stylist",
        abstract: "Arbitrary style transfer on the CPU: an HTTP service and a command-line tool.",
        subcommands: [ServeCommand.self, StylizeCommand.self, ModelsCommand.self, BenchCommand.self, ConvertWeightsCommand.self]
    )
}

/// A user-facing failure: printed as one line on stderr, exit status 1, no stack trace.
struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Runs `body`, turning any error into a one-line message and exit code 1.
func reportingErrors(_ body: () throws -> Void) throws {
    do {
        try body()
    } catch let e as ExitCode {
        throw e
    } catch {
        FileHandle.standardError.write(Data("error: \(error)\n".utf8))
        throw ExitCode(1)
    }
}
