import Foundation

/// The work itself, injected into `JobSystem`: runs on a dedicated worker thread, may block
/// for seconds, reads inputs from `blobs`, reports through `progress`, and throws `JobCanceled`
/// once `progress.isCanceled` turns true (checking between layers is enough). Any other error
/// fails the job: a `JobFailureConvertible` one with its own status/title/detail, anything
/// else as 500.
public protocol JobExecutor: Sendable {
    /// Runs one job and returns its result.
    func execute(_ job: JobRecord, blobs: BlobStore, progress: JobProgress) throws -> JobResult
    /// Called on a worker thread after a job, when no job is queued or running: the moment to hand
    /// memory kept for the next job back to the system.
    func becameIdle()
}

extension JobExecutor {
    /// Nothing to release by default.
    public func becameIdle() {}
}

/// What an executor produced: the result's bytes (or a file to move in) and its content type.
public struct JobResult: Sendable {
    /// Where the result is.
    public enum Payload: Sendable {
        /// The encoded result in memory.
        case bytes([UInt8])
        /// A file the job system takes ownership of (moved into the blob store).
        case file(URL)
    }
    /// The result.
    public var payload: Payload
    /// Its MIME type (`image/png`, `image/jpeg`).
    public var contentType: String

    /// A result held in memory.
    public init(bytes: [UInt8], contentType: String) {
        self.payload = .bytes(bytes)
        self.contentType = contentType
    }

    /// A result in a file that the job system moves into its blob store.
    public init(file: URL, contentType: String) {
        self.payload = .file(file)
        self.contentType = contentType
    }
}

/// The executor's handle on its job: report progress, observe cancellation.
public final class JobProgress: @unchecked Sendable {
    private let onReport: @Sendable (Double) -> Void
    private let canceled: @Sendable () -> Bool

    /// A handle with custom hooks (the job system makes its own; the default ignores reports
    /// and never cancels, for running an executor outside a job system, e.g. the CLI).
    public init(onReport: @escaping @Sendable (Double) -> Void = { _ in },
                isCanceled: @escaping @Sendable () -> Bool = { false }) {
        self.onReport = onReport
        self.canceled = isCanceled
    }

    /// True once the job was canceled (or the system is shutting down past its grace period).
    public var isCanceled: Bool { canceled() }

    /// Reports the fraction done (clamped to 0...1). Watchers see every change; the record is
    /// persisted at most every `progressPersistInterval` seconds.
    public func report(_ fraction: Double) {
        onReport(fraction.isFinite ? min(1, max(0, fraction)) : 0)
    }

    /// Throws `JobCanceled` when `isCanceled`.
    public func checkCancellation() throws {
        if canceled() { throw JobCanceled() }
    }
}
