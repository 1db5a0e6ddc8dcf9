/// Jobs: durable job records, blobs, the bounded queue and workers.
///
/// Internal helpers: a lock wrapper, durable file operations (temp file + fsync + rename +
/// directory fsync), identifiers, SHA-256 and the JSON date format of the records.
import COpenSSL
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `fsync(2)` at file scope, so `DurableFS.fsync(path:directory:)` does not shadow it.
@inline(__always) func sysFsync(_ fd: Int32) -> Int32 { fsync(fd) }

/// A file-system operation that failed, with the path and the OS error.
public struct StorageError: Error, CustomStringConvertible, Sendable {
    /// What was being done ("open", "rename", ...).
    public let operation: String
    /// The path involved.
    public let path: String
    /// The errno value (0 when not an OS error).
    public let code: Int32
    /// A readable description.
    public var description: String {
        code == 0 ? "\(operation) \(path) failed"
            : "\(operation) \(path): \(String(cString: strerror(code)))"
    }
    /// An error of `operation` on `path` with errno `code`.
    public init(_ operation: String, _ path: String, _ code: Int32 = errno) {
        self.operation = operation
        self.path = path
        self.code = code
    }
}

/// Durable file operations: every write goes to a temp file that is fsync'd, renamed into
/// place, and the directory is fsync'd, so a reader (or a restart) sees either the old or the
/// new content, never a torn one. Temp files start with `.tmp-` so recovery can remove them.
enum DurableFS {
    static let tempPrefix = ".tmp-"

    static func tempURL(in directory: URL, for name: String) -> URL {
        directory.appendingPathComponent("\(tempPrefix)\(name)-\(randomToken(bytes: 6))")
    }

    static func fsync(path: String, directory: Bool) throws {
        let flags = directory ? (O_RDONLY | O_DIRECTORY) : O_RDONLY
        let fd = open(path, flags | O_CLOEXEC)
        guard fd >= 0 else { throw StorageError("open", path) }
        defer { close(fd) }
        if sysFsync(fd) != 0 { throw StorageError("fsync", path) }
    }

    static func fsyncDirectory(_ url: URL) throws {
        try fsync(path: url.path, directory: true)
    }

    /// Creates `url` (and missing parents); fsyncs each parent of a directory it created.
    static func makeDirectory(_ url: URL) throws {
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir) {
            if isDir.boolValue { return }
            throw StorageError("mkdir (not a directory)", url.path, ENOTDIR)
        }
        let parent = url.deletingLastPathComponent()
        if parent.path != url.path { try makeDirectory(parent) }
        if mkdir(url.path, 0o755) != 0 && errno != EEXIST { throw StorageError("mkdir", url.path) }
        try fsyncDirectory(parent)
    }

    /// Writes `bytes` to `url` atomically and durably. Without `syncDirectory` the new content
    /// is fsync'd before the rename (never torn), but the rename itself may still be lost with
    /// the machine (the old content is then what a restart finds) until the directory is next
    /// fsync'd.
    static func writeAtomically(_ bytes: [UInt8], to url: URL, syncDirectory: Bool = true) throws {
        let dir = url.deletingLastPathComponent()
        let tmp = tempURL(in: dir, for: url.lastPathComponent)
        let fd = open(tmp.path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw StorageError("create", tmp.path) }
        var ok = false
        defer { if !ok { unlink(tmp.path) } }
        do {
            defer { close(fd) }
            try bytes.withUnsafeBytes { try writeAll(fd: fd, $0, path: tmp.path) }
            if sysFsync(fd) != 0 { throw StorageError("fsync", tmp.path) }
        }
        if rename(tmp.path, url.path) != 0 { throw StorageError("rename", url.path) }
        ok = true
        if syncDirectory { try fsyncDirectory(dir) }
    }

    static func writeAll(fd: Int32, _ buffer: UnsafeRawBufferPointer, path: String) throws {
        var offset = 0
        while offset < buffer.count {
            let n = write(fd, buffer.baseAddress! + offset, buffer.count - offset)
            if n < 0 {
                if errno == EINTR { continue }
                throw StorageError("write", path)
            }
            offset += n
        }
    }

    /// Moves the file at `source` to `destination` durably: the file is fsync'd, renamed
    /// (no bytes copied when both are on one file system; otherwise streamed in 1 MiB chunks
    /// to a temp file that is then renamed), and the destination directory fsync'd.
    static func moveIn(_ source: URL, to destination: URL) throws {
        try fsync(path: source.path, directory: false)
        let dir = destination.deletingLastPathComponent()
        if rename(source.path, destination.path) == 0 {
            try fsyncDirectory(dir)
            return
        }
        guard errno == EXDEV else { throw StorageError("rename", source.path) }
        let tmp = tempURL(in: dir, for: destination.lastPathComponent)
        try copyFile(source, to: tmp)
        if rename(tmp.path, destination.path) != 0 {
            let e = errno
            unlink(tmp.path)
            throw StorageError("rename", destination.path, e)
        }
        try fsyncDirectory(dir)
        unlink(source.path)
    }

    /// Streams `source` into a new file `destination` and fsyncs it.
    static func copyFile(_ source: URL, to destination: URL) throws {
        let input = open(source.path, O_RDONLY | O_CLOEXEC)
        guard input >= 0 else { throw StorageError("open", source.path) }
        defer { close(input) }
        let output = open(destination.path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard output >= 0 else { throw StorageError("create", destination.path) }
        var ok = false
        defer {
            close(output)
            if !ok { unlink(destination.path) }
        }
        let chunk = 1 << 20
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 16)
        defer { buffer.deallocate() }
        while true {
            let n = read(input, buffer.baseAddress!, chunk)
            if n < 0 {
                if errno == EINTR { continue }
                throw StorageError("read", source.path)
            }
            if n == 0 { break }
            try writeAll(fd: output, UnsafeRawBufferPointer(rebasing: buffer[0..<n]), path: destination.path)
        }
        if sysFsync(output) != 0 { throw StorageError("fsync", destination.path) }
        ok = true
    }

    static func readFile(_ url: URL) throws -> [UInt8]? {
        let fd = open(url.path, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            if errno == ENOENT { return nil }
            throw StorageError("open", url.path)
        }
        defer { close(fd) }
        var result: [UInt8] = []
        var st = stat()
        if fstat(fd, &st) == 0 && st.st_size > 0 { result.reserveCapacity(Int(st.st_size)) }
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw StorageError("read", url.path)
            }
            if n == 0 { break }
            result.append(contentsOf: buffer[0..<n])
        }
        return result
    }

    static func fileSize(_ url: URL) -> Int? {
        var st = stat()
        guard stat(url.path, &st) == 0 else { return nil }
        return Int(st.st_size)
    }

    /// Removes a file; a missing file is not an error.
    static func removeFile(_ url: URL) throws {
        if unlink(url.path) != 0 && errno != ENOENT { throw StorageError("unlink", url.path) }
    }

    /// Removes a directory tree; a missing one is not an error. Fsyncs the parent.
    static func removeTree(_ url: URL) throws {
        guard FileManager.default.fileExists(atPath: url.path) else { return }
        try FileManager.default.removeItem(at: url)
        try? fsyncDirectory(url.deletingLastPathComponent())
    }

    static func listDirectory(_ url: URL) -> [String] {
        (try? FileManager.default.contentsOfDirectory(atPath: url.path)) ?? []
    }
}

/// `count` random bytes from the system CSPRNG, base64url without padding.
public func randomToken(bytes count: Int) -> String {
    var rng = SystemRandomNumberGenerator()
    let bytes = (0..<count).map { _ in UInt8.random(in: .min ... .max, using: &rng) }
    return base64url(bytes)
}

func base64url(_ bytes: [UInt8]) -> String {
    Data(bytes).base64EncodedString()
        .replacingOccurrences(of: "+", with: "-")
        .replacingOccurrences(of: "/", with: "_")
        .replacingOccurrences(of: "=", with: "")
}

/// Identifiers and names used as path components: letters, digits, `-` and `_`, plus `.`
/// inside names (never leading), 1...128 characters.
public enum Names {
    /// True for a job or style id that is safe as a path component.
    public static func isValidID(_ id: String) -> Bool {
        guard (1...128).contains(id.utf8.count) else { return false }
        return id.utf8.allSatisfy { isIDByte($0) }
    }

    /// True for a blob name that is safe as a path component.
    public static func isValidBlobName(_ name: String) -> Bool {
        guard (1...128).contains(name.utf8.count), name.utf8.first != UInt8(ascii: ".") else { return false }
        return name.utf8.allSatisfy { isIDByte($0) || $0 == UInt8(ascii: ".") }
    }

    private static func isIDByte(_ b: UInt8) -> Bool {
        (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A)
            || b == UInt8(ascii: "-") || b == UInt8(ascii: "_")
    }
}

/// SHA-256 helpers (OpenSSL), lowercase hex output.
public enum SHA256Digest {
    /// The SHA-256 of `bytes`, as 64 lowercase hex digits.
    public static func hex(_ bytes: [UInt8]) -> String {
        var out = [UInt8](repeating: 0, count: Int(SHA256_DIGEST_LENGTH))
        bytes.withUnsafeBufferPointer { buf in
            out.withUnsafeMutableBufferPointer { o in
                _ = SHA256(buf.baseAddress, buf.count, o.baseAddress)
            }
        }
        return hexString(out)
    }

    /// The SHA-256 of a file's content, streamed, as 64 lowercase hex digits.
    public static func hex(file url: URL) throws -> String {
        let fd = open(url.path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw StorageError("open", url.path) }
        defer { close(fd) }
        guard let ctx = EVP_MD_CTX_new() else { throw StorageError("EVP_MD_CTX_new", url.path, 0) }
        defer { EVP_MD_CTX_free(ctx) }
        guard EVP_DigestInit_ex(ctx, EVP_sha256(), nil) == 1 else { throw StorageError("sha256", url.path, 0) }
        let chunk = 1 << 20
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 16)
        defer { buffer.deallocate() }
        while true {
            let n = read(fd, buffer.baseAddress!, chunk)
            if n < 0 {
                if errno == EINTR { continue }
                throw StorageError("read", url.path)
            }
            if n == 0 { break }
            guard EVP_DigestUpdate(ctx, buffer.baseAddress!, n) == 1 else { throw StorageError("sha256", url.path, 0) }
        }
        var out = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        guard EVP_DigestFinal_ex(ctx, &out, &length) == 1 else { throw StorageError("sha256", url.path, 0) }
        return hexString(Array(out[0..<Int(length)]))
    }

    static func hexString(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var chars = [UInt8]()
        chars.reserveCapacity(bytes.count * 2)
        for b in bytes {
            chars.append(digits[Int(b >> 4)])
            chars.append(digits[Int(b & 15)])
        }
        return String(decoding: chars, as: UTF8.self)
    }
}

/// JSON coding of records: ISO 8601 UTC dates with milliseconds, sorted keys. Dates in
/// records are kept at millisecond precision in memory too, so a record read back from disk
/// equals the one in memory.
public enum JobsJSON {
    /// The current time at millisecond precision.
    public static func now() -> Date { normalize(Date()) }

    /// `date` rounded to the nearest millisecond (exactly what survives a JSON round trip).
    public static func normalize(_ date: Date) -> Date {
        Date(timeIntervalSince1970: Double(milliseconds(date)) / 1000)
    }

    static func milliseconds(_ date: Date) -> Int64 {
        Int64((date.timeIntervalSince1970 * 1000).rounded())
    }

    /// `2026-01-02T03:04:05.678Z`.
    public static func format(_ date: Date) -> String {
        let ms = milliseconds(date)
        var seconds = time_t(ms >= 0 ? ms / 1000 : (ms - 999) / 1000)
        let frac = Int(ms - Int64(seconds) * 1000)
        var tm = tm()
        gmtime_r(&seconds, &tm)
        return String(format: "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", Int(tm.tm_year) + 1900, Int(tm.tm_mon) + 1,
                      Int(tm.tm_mday), Int(tm.tm_hour), Int(tm.tm_min), Int(tm.tm_sec), frac)
    }

    /// Parses `YYYY-MM-DDTHH:MM:SS[.fff...]Z` (UTC); nil otherwise.
    public static func parse(_ string: String) -> Date? {
        let b = Array(string.utf8)
        guard b.count >= 20, b[4] == UInt8(ascii: "-"), b[7] == UInt8(ascii: "-"), b[10] == UInt8(ascii: "T"),
              b[13] == UInt8(ascii: ":"), b[16] == UInt8(ascii: ":"), b.last == UInt8(ascii: "Z") else { return nil }
        func number(_ range: Range<Int>) -> Int? {
            var v = 0
            for i in range {
                guard b[i] >= 0x30 && b[i] <= 0x39 else { return nil }
                v = v * 10 + Int(b[i] - 0x30)
            }
            return v
        }
        guard let year = number(0..<4), let month = number(5..<7), let day = number(8..<10),
              let hour = number(11..<13), let minute = number(14..<16), let second = number(17..<19) else { return nil }
        var ms = 0
        if b.count > 20 {
            guard b[19] == UInt8(ascii: "."), b.count > 21 else { return nil }
            var digits = 0
            for i in 20..<(b.count - 1) {
                guard b[i] >= 0x30 && b[i] <= 0x39 else { return nil }
                if digits < 3 { ms = ms * 10 + Int(b[i] - 0x30) }
                digits += 1
            }
            if digits < 3 { for _ in digits..<3 { ms *= 10 } }
        }
        var tm = tm()
        tm.tm_year = Int32(year - 1900)
        tm.tm_mon = Int32(month - 1)
        tm.tm_mday = Int32(day)
        tm.tm_hour = Int32(hour)
        tm.tm_min = Int32(minute)
        tm.tm_sec = Int32(second)
        let seconds = timegm(&tm)
        return Date(timeIntervalSince1970: Double(Int64(seconds) * 1000 + Int64(ms)) / 1000)
    }

    /// An encoder writing dates with `format(_:)` and sorted keys.
    public static func encoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        encoder.dateEncodingStrategy = .custom { date, coder in
            var c = coder.singleValueContainer()
            try c.encode(format(date))
        }
        return encoder
    }

    /// A decoder reading dates with `parse(_:)`.
    public static func decoder() -> JSONDecoder {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .custom { coder in
            let c = try coder.singleValueContainer()
            let s = try c.decode(String.self)
            guard let d = parse(s) else {
                throw DecodingError.dataCorruptedError(in: c, debugDescription: "bad date \(s)")
            }
            return d
        }
        return decoder
    }

    /// `value` as JSON bytes with the shared encoder.
    public static func encode<T: Encodable>(_ value: T) throws -> [UInt8] {
        Array(try encoder().encode(value))
    }

    /// A value decoded from JSON bytes with the shared decoder.
    public static func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8]) throws -> T {
        try decoder().decode(type, from: Data(bytes))
    }
}

/// A value computed on another thread while the caller does something else (`wait()` for it).
final class BackgroundValue<T: Sendable>: @unchecked Sendable {
    private var value: T?
    private let done = DispatchSemaphore(value: 0)

    init(_ work: @escaping @Sendable () -> T) {
        DispatchQueue.global(qos: .userInitiated).async { [self] in
            value = work()
            done.signal()
        }
    }

    /// The value, once computed.
    func wait() -> T {
        done.wait()
        done.signal()   // later waits return at once
        return value!
    }
}
