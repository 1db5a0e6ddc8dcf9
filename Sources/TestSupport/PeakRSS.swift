import Foundation

/// The process's peak resident set size (VmHWM), resettable (Linux).
public enum PeakRSS {
    /// Resets VmHWM to the current RSS (writing 5 to clear_refs), so later readings show the peak of
    /// what follows rather than of earlier tests; when that is not allowed, readings keep the old peak
    /// and growth reads low.
    public static func reset() {
        if let h = FileHandle(forWritingAtPath: "/proc/self/clear_refs") {
            try? h.write(contentsOf: Data("5".utf8))
            try? h.close()
        }
    }

    /// The peak resident set size in kB (0 where /proc is not there).
    public static func kB() -> Int {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
            return Int(line.split(separator: " ", omittingEmptySubsequences: true)[1]) ?? 0
        }
        return 0
    }
}
