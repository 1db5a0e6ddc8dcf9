/// What the running CPU supports, and whether this build can use it.
public enum CPUFeatures {
    /// True when the CPU reports AVX2 and FMA (CPUID leaf 7 / leaf 1).
    public static let hasAVX2FMA: Bool = {
        #if arch(x86_64)
        return cpuSupportsAVX2FMA()
        #else
        return false
        #endif
    }()

    /// True when the engine was compiled for AVX2+FMA (the default; STYLIST_PORTABLE=1 builds turn it off).
    public static var builtForAVX2: Bool {
        #if arch(x86_64) && STYLIST_AVX2_BUILD
        return true
        #else
        return false
        #endif
    }

    /// Nil when this binary can run here, else a one-line reason.
    public static var unsupportedReason: String? {
        if builtForAVX2 && !hasAVX2FMA {
            return "this stylist binary was built for AVX2+FMA CPUs; rebuild with STYLIST_PORTABLE=1 for this CPU"
        }
        return nil
    }
}

#if arch(x86_64)
import Foundation
/// Reads the CPU flags from /proc/cpuinfo (Linux); conservative false when unreadable.
func cpuSupportsAVX2FMA() -> Bool {
    guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return false }
    guard let flagsLine = text.split(separator: "\n").first(where: { $0.hasPrefix("flags") }) else { return false }
    let flags = Set(flagsLine.split(separator: " ").map(String.init))
    return flags.contains("avx2") && flags.contains("fma")
}
#endif
