import ArgumentParser
import Engine
import Foundation

if let reason = CPUFeatures.unsupportedReason {
    FileHandle.standardError.write(Data("error: \(reason)\n".utf8))
    exit(1)
}
StylistCommand.main()
