import Foundation

/// A one-line progress bar on stderr, redrawn in place (`\r`) as a run reports each layer.
final class ProgressBar {
    private let label: String
    private let width = 30
    private var lastDrawn = -1

    init(label: String) { self.label = label }

    /// Draws `fraction` (0...1); redraws only when the bar's percentage changes.
    func show(_ fraction: Double) {
        let percent = Int((min(1, max(0, fraction)) * 100).rounded(.down))
        guard percent != lastDrawn else { return }
        lastDrawn = percent
        let filled = percent * width / 100
        let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
        FileHandle.standardError.write(Data("\r\(label) [\(bar)] \(String(format: "%3d", percent))%".utf8))
    }

    /// Clears the line so the summary that follows starts clean.
    func finish() {
        FileHandle.standardError.write(Data("\r\u{1B}[2K".utf8))
    }
}
