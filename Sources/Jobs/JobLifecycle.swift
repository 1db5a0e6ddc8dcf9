import Foundation
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// The rules of a job's life that every backend applies the same way: which inputs are
/// acceptable, what a start, a re-queue, an interruption and a finish do to the record, and
/// how a result reaches the blob store.
public enum JobLifecycle {
    /// The name of the result blob of a succeeded job.
    public static let resultBlobName = "result"

    /// Throws `InvalidBlobName` unless every input has a safe, unique, non-reserved name.
    public static func checkInputNames(_ inputs: [JobInput]) throws {
        var seen = Set<String>()
        for input in inputs {
            guard Names.isValidBlobName(input.name), input.name != LocalJobStore.recordName,
                  input.name != resultBlobName, seen.insert(input.name).inserted
            else { throw InvalidBlobName(name: input.name) }
        }
    }

    /// Writes every input into `blobs` under `job`.
    public static func storeInputs(_ inputs: [JobInput], job: String, blobs: BlobStore) throws {
        for input in inputs {
            switch input.source {
            case .file(let url): try blobs.put(file: url, job: job, name: input.name)
            case .bytes(let bytes): try blobs.put(bytes, job: job, name: input.name)
            }
        }
    }

    /// The record of a job a worker starts now.
    public static func started(_ record: JobRecord) -> JobRecord {
        var r = record
        r.status = .running
        r.startedAt = JobsJSON.now()
        r.attempts += 1
        r.progress = 0
        return r
    }

    /// The record of a running job handed back to the queue (shutdown, lost worker).
    public static func requeued(_ record: JobRecord) -> JobRecord {
        var r = record
        r.status = .queued
        r.startedAt = nil
        r.progress = 0
        return r
    }

    /// The record of a job that was interrupted `attempts` times and is not tried again.
    public static func abandoned(_ record: JobRecord, ttl: Double) -> JobRecord {
        var r = record
        let now = JobsJSON.now()
        r.status = .failed
        r.error = JobFailure(status: 500, title: "Job interrupted",
                             detail: "The service stopped while running this job \(r.attempts) times.")
        r.finishedAt = now
        r.expiresAt = JobsJSON.normalize(now.addingTimeInterval(ttl))
        return r
    }

    /// The terminal record for an executor's `outcome`. A successful result is stored in
    /// `blobs` first (a failure to store it fails the job with 507 or 500); a canceled job's
    /// result file is discarded. The job's error says what failed, never where. When storing
    /// fails, `retryStore` decides (and may wait) whether to try again.
    public static func finished(_ record: JobRecord, outcome: Result<JobResult, Error>, canceled: Bool,
                                blobs: BlobStore, ttl: Double, logger: Logger,
                                retryStore: (Error) -> Bool = { _ in false }) -> JobRecord {
        var r = record
        let id = record.id
        switch outcome {
        case .success(let result) where !canceled:
            // A result in memory is hashed on another core while it is written and fsync'd.
            let digest: BackgroundValue<String>? = {
                if case .bytes(let bytes) = result.payload { return BackgroundValue { SHA256Digest.hex(bytes) } }
                return nil
            }()
            do {
                while true {
                    do {
                        switch result.payload {
                        case .bytes(let bytes): try blobs.put(bytes, job: id, name: resultBlobName)
                        case .file(let url): try blobs.put(file: url, job: id, name: resultBlobName)
                        }
                        break
                    } catch where retryStore(error) {
                        continue
                    }
                }
                r.status = .succeeded
                r.progress = 1
                r.resultContentType = result.contentType
                if case .bytes(let bytes) = result.payload {
                    r.resultSize = bytes.count
                    r.resultSHA256 = digest?.wait()
                } else if let url = blobs.path(job: id, name: resultBlobName) {
                    r.resultSize = DurableFS.fileSize(url)
                    r.resultSHA256 = try? SHA256Digest.hex(file: url)
                }
            } catch {
                logger.error("could not store a result", metadata: ["job": "\(id)", "error": "\(error)"])
                let full = (error as? StorageError).map { $0.code == ENOSPC || $0.code == EDQUOT } ?? false
                r.status = .failed
                r.error = JobFailure(status: full ? 507 : 500, title: "Could not store the result",
                                     detail: full ? "The server's disk is full." : "The server could not write the result.")
            }
        case .success(let result):
            discard(result)
            r.status = .canceled
        case .failure(let error):
            if canceled || error is JobCanceled {
                r.status = .canceled
            } else if let convertible = error as? JobFailureConvertible {
                r.status = .failed
                r.error = convertible.jobFailure
            } else {
                logger.error("job failed unexpectedly", metadata: ["job": "\(id)", "error": "\(error)"])
                r.status = .failed
                r.error = JobFailure(status: 500, title: "Job failed", detail: "An internal error stopped the job; the server log has the details.")
            }
        }
        let now = JobsJSON.now()
        r.finishedAt = now
        r.expiresAt = JobsJSON.normalize(now.addingTimeInterval(ttl))
        return r
    }

    /// Removes a result the job system will not keep.
    public static func discard(_ result: JobResult) {
        if case .file(let url) = result.payload { try? DurableFS.removeFile(url) }
    }

    /// Removes what a terminal job no longer needs: its inputs, and a canceled job's result.
    public static func removeLeftovers(of record: JobRecord, blobs: BlobStore) {
        for name in record.inputs { try? blobs.delete(job: record.id, name: name) }
        if record.status == .canceled { try? blobs.delete(job: record.id, name: resultBlobName) }
    }

    /// The "job finished" log line.
    public static func logFinished(_ record: JobRecord, seconds: Double, logger: Logger) {
        var metadata: Logger.Metadata = ["job": "\(record.id)", "status": "\(record.status.rawValue)",
                                         "seconds": "\(String(format: "%.3f", seconds))"]
        if let e = record.error { metadata["error"] = "\(e.status) \(e.title): \(e.detail ?? "")" }
        logger.info("job finished", metadata: metadata)
    }
}
