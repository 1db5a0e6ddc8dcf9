import Foundation

/// The life-cycle state of a job.
public enum JobStatus: String, Codable, Sendable, CaseIterable {
    case queued, running, succeeded, failed, canceled

    /// True for `succeeded`, `failed` and `canceled`: the job will not change any more.
    public var isTerminal: Bool { self == .succeeded || self == .failed || self == .canceled }
}

/// Why a job failed, shaped for an RFC 9457 problem document (`status`, `title`, `detail`).
public struct JobFailure: Codable, Sendable, Equatable, Error {
    /// The HTTP status that best describes the failure (e.g. 422 for a corrupt image).
    public var status: Int
    /// A short, human-readable summary.
    public var title: String
    /// A longer explanation specific to this job.
    public var detail: String?
    /// Creates a failure.
    public init(status: Int, title: String, detail: String? = nil) {
        self.status = status
        self.title = title
        self.detail = detail
    }
}

/// An error an executor throws to fail a job with a specific status/title/detail.
public protocol JobFailureConvertible: Error {
    /// The failure recorded on the job.
    var jobFailure: JobFailure { get }
}

extension JobFailure: JobFailureConvertible {
    /// A `JobFailure` thrown by an executor is recorded as is.
    public var jobFailure: JobFailure { self }
}

/// The durable record of one job: what `GET /v1/jobs/{id}` renders (plus the live
/// `queuePosition` of `JobSnapshot`).
public struct JobRecord: Codable, Sendable, Equatable {
    /// Random, URL-safe identifier (128 bits, base64url, 22 characters).
    public var id: String
    /// Current state.
    public var status: JobStatus
    /// Fraction done, 0...1 (1 once succeeded).
    public var progress: Double
    /// When the job was accepted.
    public var createdAt: Date
    /// When a worker last started it (nil while queued).
    public var startedAt: Date?
    /// When it reached a terminal state.
    public var finishedAt: Date?
    /// When its record and files will be removed (set when it finishes: finishedAt + TTL).
    public var expiresAt: Date?
    /// Opaque request parameters chosen by the app (model, alpha, style_weights, ...).
    public var parameters: [String: String]
    /// Names of the input blobs (e.g. `content`, `style0`); removed once the job finishes.
    public var inputs: [String]
    /// Registered styles the job uses.
    public var styleIDs: [String]
    /// Content type of the result blob (`result`) once succeeded.
    public var resultContentType: String?
    /// Size in bytes of the result blob once succeeded.
    public var resultSize: Int?
    /// SHA-256 (lowercase hex) of the result, usable as a strong ETag.
    public var resultSHA256: String?
    /// Why it failed (status `failed`), or why it was canceled.
    public var error: JobFailure?
    /// The client's `Idempotency-Key`, if any.
    public var idempotencyKey: String?
    /// The app's digest of the request body, compared when the key is reused.
    public var requestDigest: String?
    /// How many times a worker has started the job (0 while never started).
    public var attempts: Int
    /// Submission order (FIFO tie-break for equal `createdAt`).
    public var sequence: UInt64
    /// Who may see the job (the app's opaque client identity, e.g. a hash of its API key); nil: anyone.
    public var owner: String?

    /// Creates a record (the job system creates them; public for tests and other stores).
    public init(id: String, status: JobStatus = .queued, progress: Double = 0, createdAt: Date,
                startedAt: Date? = nil, finishedAt: Date? = nil, expiresAt: Date? = nil,
                parameters: [String: String] = [:], inputs: [String] = [], styleIDs: [String] = [],
                resultContentType: String? = nil, resultSize: Int? = nil, resultSHA256: String? = nil,
                error: JobFailure? = nil, idempotencyKey: String? = nil, requestDigest: String? = nil,
                attempts: Int = 0, sequence: UInt64 = 0, owner: String? = nil) {
        self.id = id
        self.status = status
        self.progress = progress
        self.createdAt = createdAt
        self.startedAt = startedAt
        self.finishedAt = finishedAt
        self.expiresAt = expiresAt
        self.parameters = parameters
        self.inputs = inputs
        self.styleIDs = styleIDs
        self.resultContentType = resultContentType
        self.resultSize = resultSize
        self.resultSHA256 = resultSHA256
        self.error = error
        self.idempotencyKey = idempotencyKey
        self.requestDigest = requestDigest
        self.attempts = attempts
        self.sequence = sequence
        self.owner = owner
    }

    /// Seconds between start and finish, when both are known.
    public var duration: Double? {
        guard let s = startedAt, let f = finishedAt else { return nil }
        return f.timeIntervalSince(s)
    }
}

/// A job as seen at one moment: the record, its live queue position and a change counter.
public struct JobSnapshot: Sendable, Equatable {
    /// The record.
    public var record: JobRecord
    /// 1-based position in the queue (1 = the next job a worker takes); nil unless queued.
    public var queuePosition: Int?
    /// Increases on every observable change (status, progress, queue position).
    public var version: UInt64
    /// A snapshot.
    public init(record: JobRecord, queuePosition: Int?, version: UInt64) {
        self.record = record
        self.queuePosition = queuePosition
        self.version = version
    }
}

/// The small marker left after a job expired, so the app can answer 410 instead of 404.
public struct JobTombstone: Codable, Sendable, Equatable {
    /// The expired job's id.
    public var id: String
    /// When the job's files were removed.
    public var expiredAt: Date
    /// Creates a tombstone.
    public init(id: String, expiredAt: Date) {
        self.id = id
        self.expiredAt = expiredAt
    }
}

/// What `JobSystem.lookup(id:)` found.
public enum JobLookup: Sendable, Equatable {
    /// The job exists.
    case found(JobSnapshot)
    /// The job existed but expired (answer 410).
    case expired(JobTombstone)
    /// No such job (answer 404); also for deleted jobs and malformed ids.
    case notFound
}

/// What `JobSystem.cancel(id:)` did.
public enum CancelOutcome: Sendable, Equatable {
    /// A queued job was canceled at once (answer 202 with the job).
    case canceled(JobSnapshot)
    /// A running job was asked to stop; it becomes `canceled` when the executor returns (202).
    case cancelRequested(JobSnapshot)
    /// A finished job was deleted with its files (answer 204).
    case deleted
    /// The job expired earlier (answer 410).
    case expired(JobTombstone)
    /// No such job (answer 404).
    case notFound
}

/// `submit` refused: the queue holds `capacity` jobs; retry after `retryAfter` seconds.
public struct QueueFull: Error, Sendable, Equatable {
    /// Estimated seconds until a slot frees (for `Retry-After`), at least 1.
    public let retryAfter: Int
    /// The configured capacity.
    public let capacity: Int
    /// `submit` refused at `capacity`; retry after `retryAfter` seconds.
    public init(retryAfter: Int, capacity: Int) {
        self.retryAfter = retryAfter
        self.capacity = capacity
    }
}

/// `submit` refused: the idempotency key was used for a different request (answer 422).
public struct IdempotencyKeyReused: Error, Sendable, Equatable {
    /// The reused key.
    public let key: String
    /// The job created with it earlier.
    public let existingJobID: String
    /// `key` was used for job `existingJobID` with another request.
    public init(key: String, existingJobID: String) {
        self.key = key
        self.existingJobID = existingJobID
    }
}

/// `submit` refused: the job system is shutting down (answer 503).
public struct JobSystemShuttingDown: Error, Sendable, Equatable {
    /// Creates the error.
    public init() {}
}

/// The job store (a database) cannot be reached right now; the request may be retried.
public struct JobStoreUnavailable: Error, Sendable, CustomStringConvertible {
    /// What failed, for the log (never shown to clients).
    public let reason: String
    /// Creates the error.
    public init(reason: String) { self.reason = reason }
    /// The reason.
    public var description: String { "job store unavailable: \(reason)" }
}

/// A blob or input name that is not a safe path component.
public struct InvalidBlobName: Error, Sendable, Equatable {
    /// The rejected name.
    public let name: String
    /// `name` is not a safe blob name.
    public init(name: String) { self.name = name }
}

/// Thrown by an executor that noticed `JobProgress.isCanceled`; the job becomes `canceled`.
public struct JobCanceled: Error, Sendable, Equatable {
    /// Creates the error.
    public init() {}
}
