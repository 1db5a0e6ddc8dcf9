import Engine
import Foundation

// This target is compiled for baseline x86-64, so the check runs before any AVX2 code can.
if EngineBuild.requiresAVX2FMA && !cpuSupportsAVX2FMA() {
    FileHandle.standardError.write(Data("error: this stylist binary was built for CPUs with AVX2 and FMA; rebuild with STYLIST_PORTABLE=1 swift build -c release\n".utf8))
    exit(1)
}
StylistCommand.main()

/// Reads the CPU flags from /proc/cpuinfo (Linux); true elsewhere (the build decides there).
func cpuSupportsAVX2FMA() -> Bool {
    #if os(Linux) && arch(x86_64)
    guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
          let line = text.split(separator: "\n").first(where: { $0.hasPrefix("flags") }) else { return true }
    let flags = Set(line.split(separator: " "))
    return flags.contains("avx2") && flags.contains("fma")
    #else
    return true
    #endif
}
