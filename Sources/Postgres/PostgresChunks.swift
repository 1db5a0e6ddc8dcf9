import CLibPQ
import Foundation

/// Large values as rows of bounded bytea chunks, so no value is ever held whole in memory.
extension PostgresConnection {
    /// One mebibyte: the chunk size the helpers use unless told otherwise.
    public static let defaultChunkSize = 1 << 20

    /// Streams the file at `file` into rows: `insertSQL` receives `keyParams`, then the chunk's
    /// sequence number (bigint, from 0), then its bytes (bytea). Returns the bytes written.
    /// An empty file inserts no rows. Wrap the call in `transaction` for all-or-nothing.
    @discardableResult
    public func writeChunks(from file: URL, insertSQL: String, keyParams: [PostgresValue?],
                            chunkSize: Int = defaultChunkSize) throws -> Int64 {
        let descriptor = open(file.path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw PostgresError.io("cannot open a chunk source", errno) }
        defer { close(descriptor) }
        return try writeChunks(from: descriptor, insertSQL: insertSQL, keyParams: keyParams, chunkSize: chunkSize)
    }

    /// As `writeChunks(from: URL, ...)`, reading an open descriptor from its current offset to its end.
    @discardableResult
    public func writeChunks(from descriptor: Int32, insertSQL: String, keyParams: [PostgresValue?],
                            chunkSize: Int = defaultChunkSize) throws -> Int64 {
        try writeChunks(insertSQL: insertSQL, keyParams: keyParams, chunkSize: chunkSize) { buffer in
            var filled = 0
            while filled < buffer.count {
                let got = read(descriptor, buffer.baseAddress! + filled, buffer.count - filled)
                if got < 0 {
                    if errno == EINTR { continue }
                    throw PostgresError.io("cannot read a chunk source", errno)
                }
                if got == 0 { break }
                filled += got
            }
            return filled
        }
    }

    /// The general form: `fill` writes up to `buffer.count` bytes and returns how many; a short
    /// count (0 included) marks the end. Each filled buffer becomes one row as described above.
    @discardableResult
    public func writeChunks(insertSQL: String, keyParams: [PostgresValue?], chunkSize: Int = defaultChunkSize,
                            fill: (UnsafeMutableRawBufferPointer) throws -> Int) throws -> Int64 {
        guard chunkSize > 0 else { throw PostgresError(kind: .usage, message: "chunk size must be positive") }
        var buffer = [UInt8](repeating: 0, count: chunkSize)
        var sequence: Int64 = 0
        var total: Int64 = 0
        while true {
            let filled = try buffer.withUnsafeMutableBytes { try fill($0) }
            guard filled > 0 else { break }
            let chunk = filled == chunkSize ? buffer : Array(buffer[0..<filled])
            try query(insertSQL, keyParams + [.int(sequence), .bytes(chunk)])
            sequence += 1
            total += Int64(filled)
            if filled < chunkSize { break }
        }
        return total
    }

    /// Runs `selectSQL` (with `keyParams`), whose first column is the bytea chunk in order, and
    /// writes the chunks to `file` (created or truncated). Returns the bytes written.
    @discardableResult
    public func readChunks(selectSQL: String, keyParams: [PostgresValue?], to file: URL) throws -> Int64 {
        let descriptor = open(file.path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw PostgresError.io("cannot create a chunk destination", errno) }
        defer { close(descriptor) }
        return try readChunks(selectSQL: selectSQL, keyParams: keyParams) { chunk in
            var written = 0
            while written < chunk.count {
                let put = write(descriptor, chunk.baseAddress! + written, chunk.count - written)
                if put < 0 {
                    if errno == EINTR { continue }
                    throw PostgresError.io("cannot write a chunk destination", errno)
                }
                written += put
            }
        }
    }

    /// The general form: hands each chunk to `each` as it arrives, one row in memory at a time
    /// (libpq single-row mode, binary results). An error from `each` cancels the rest and is rethrown.
    @discardableResult
    public func readChunks(selectSQL: String, keyParams: [PostgresValue?],
                           each: (UnsafeRawBufferPointer) throws -> Void) throws -> Int64 {
        let encoded = try EncodedParameters(keyParams)
        let sent = encoded.withArrays { values, lengths, formats, types in
            PQsendQueryParams(handle, selectSQL, encoded.count, types, values, lengths, formats, 1)
        }
        guard sent == 1 else { throw PostgresError.from(result: nil, connection: handle, redacting: info.password) }
        PQsetSingleRowMode(handle)
        var total: Int64 = 0
        var failure: Error?
        // Every result is read to the end, even after a failure, so the connection stays usable.
        while let result = PQgetResult(handle) {
            defer { PQclear(result) }
            switch PQresultStatus(result) {
            case PGRES_SINGLE_TUPLE:
                guard failure == nil else { continue }
                do {
                    total += try deliverChunk(result, to: each)
                } catch {
                    failure = error
                    cancelRunningStatement()
                }
            case PGRES_TUPLES_OK:
                break
            default:
                if failure == nil {
                    failure = PostgresError.from(result: result, connection: handle, redacting: info.password)
                }
            }
        }
        if let failure { throw failure }
        return total
    }

    private func deliverChunk(_ result: OpaquePointer, to each: (UnsafeRawBufferPointer) throws -> Void) throws -> Int64 {
        guard PQnfields(result) >= 1, PQftype(result, 0) == PostgresType.bytea else {
            throw PostgresError(kind: .usage, message: "readChunks needs a bytea first column")
        }
        guard PQgetisnull(result, 0, 0) == 0 else {
            throw PostgresError(kind: .decoding, message: "a chunk is NULL")
        }
        let length = Int(PQgetlength(result, 0, 0))
        try each(UnsafeRawBufferPointer(start: PQgetvalue(result, 0, 0), count: length))
        return Int64(length)
    }

    /// Asks the server to stop the statement in flight; its remaining results still have to be read.
    private func cancelRunningStatement() {
        guard let cancel = PQgetCancel(handle) else { return }
        defer { PQfreeCancel(cancel) }
        var message = [CChar](repeating: 0, count: 256)
        _ = PQcancel(cancel, &message, Int32(message.count))
    }
}

extension PostgresError {
    /// A file error for the chunk helpers: names the operation and errno, never the path.
    static func io(_ what: String, _ code: Int32) -> PostgresError {
        PostgresError(kind: .io, message: "\(what): \(String(cString: strerror(code)))")
    }
}
