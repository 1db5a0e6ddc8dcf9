import Foundation

/// The built `stylist` executable, run the way a user runs it (for the CLI tests).
public enum StylistBinary {
    /// The executable next to the test runner (…/debug/StylistPackageTests.xctest sits beside the
    /// built products), so it is the one this test build made.
    public static var url: URL {
        let runner = URL(fileURLWithPath: (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0])
        return runner.deletingLastPathComponent().appendingPathComponent("stylist")
    }

    /// Runs `executable` (default: `stylist`) with `arguments` and waits; the exit status and
    /// everything written to stdout and stderr.
    public static func run(_ arguments: [String], in directory: URL? = nil, environment: [String: String]? = nil,
                           executable: URL? = nil) throws -> (status: Int32, out: String, err: String) {
        let p = Process()
        p.executableURL = executable ?? url
        p.arguments = arguments
        if let directory { p.currentDirectoryURL = directory }
        if let environment { p.environment = environment }
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        // stderr is drained on another thread: a child filling one pipe while we block on the other would deadlock.
        final class Drained: @unchecked Sendable { var data = Data() }
        let errors = Drained()
        let errDone = DispatchSemaphore(value: 0)
        DispatchQueue.global().async {
            errors.data = err.fileHandleForReading.readDataToEndOfFile()
            errDone.signal()
        }
        let o = out.fileHandleForReading.readDataToEndOfFile()
        errDone.wait()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: errors.data, as: UTF8.self))
    }
}
