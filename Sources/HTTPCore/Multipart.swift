#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// One part of a multipart/form-data body.
public struct MultipartPart: Sendable {
    /// The form field name from Content-Disposition.
    public var name: String
    /// The filename from Content-Disposition (as sent; never use it as a path).
    public var filename: String?
    /// The part's Content-Type, if given.
    public var contentType: String?
    /// All of the part's header fields.
    public var headers: HTTPHeaders
    /// The part's content; `.file` parts are spooled files owned by the caller (see `MultipartParser.removeSpoolFiles`).
    public var body: HTTPBody
    /// A part from its fields.
    public init(name: String, filename: String? = nil, contentType: String? = nil, headers: HTTPHeaders = [:], body: HTTPBody) {
        self.name = name; self.filename = filename; self.contentType = contentType; self.headers = headers; self.body = body
    }
}

/// Why a multipart/form-data body was rejected; `description` is a message fit for a 400 detail.
public enum MultipartError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The Content-Type is not multipart/form-data.
    case notMultipart(contentType: String)
    /// The Content-Type has no usable boundary parameter.
    case invalidBoundary(String)
    /// The body never contains the opening boundary line.
    case missingInitialBoundary
    /// The body ends before the closing `--boundary--` line.
    case missingFinalBoundary
    /// A part's header section is longer than the limit.
    case headerTooLong(limit: Int)
    /// A part header line is malformed.
    case malformedHeader(String)
    /// A part has no `Content-Disposition: form-data` header with a name.
    case missingName
    /// A part is larger than `maxPartBytes` (callers usually answer 413).
    case partTooLarge(name: String, limit: Int)
    /// More parts than `maxParts`.
    case tooManyParts(limit: Int)
    /// A spool file could not be written or the body could not be read: what failed (never a
    /// path, since the description reaches clients) and the errno value.
    case io(String, code: Int32)

    public var description: String {
        switch self {
        case .notMultipart(let ct): return "Expected Content-Type multipart/form-data, got '\(ct)'."
        case .invalidBoundary(let why): return "Invalid multipart boundary: \(why)."
        case .missingInitialBoundary: return "Malformed multipart body: the opening boundary line was not found."
        case .missingFinalBoundary: return "Malformed multipart body: it ends before the closing boundary line (--boundary--)."
        case .headerTooLong(let limit): return "Malformed multipart body: a part's headers exceed \(limit) bytes."
        case .malformedHeader(let why): return "Malformed multipart part header: \(why)."
        case .missingName: return "Malformed multipart part: Content-Disposition must be form-data with a name parameter."
        case .partTooLarge(let name, let limit): return "Multipart part '\(name)' exceeds \(limit) bytes."
        case .tooManyParts(let limit): return "Multipart body has more than \(limit) parts."
        case .io(let why, _): return "Could not store a multipart part: \(why)."
        }
    }

    /// Whether the error is a size limit (a 413 rather than a 400).
    public var isTooLarge: Bool {
        switch self {
        case .partTooLarge, .tooManyParts: return true
        default: return false
        }
    }
}

/// multipart/form-data (RFC 7578) parsing of a whole request body.
public enum MultipartParser {
    /// Parses `body`; parts over `memoryThreshold` bytes are spooled to files in `spoolDirectory`, owned by the
    /// caller. On error no spool file is left behind.
    public static func parse(body: HTTPBody, contentType: String, maxPartBytes: Int, maxParts: Int,
                             spoolDirectory: String, memoryThreshold: Int = 1024 * 1024) throws -> [MultipartPart] {
        let boundary = try boundary(fromContentType: contentType)
        var parser = MultipartStreamParser(boundary: boundary, maxPartBytes: maxPartBytes, maxParts: maxParts,
                                           memoryThreshold: memoryThreshold, spoolDirectory: spoolDirectory)
        do {
            switch body {
            case .empty:
                break
            case .bytes(let bytes):
                try bytes.withUnsafeBytes { try parser.feed($0) }
            case .file(let path, _):
                let fd = open(path, O_RDONLY | O_CLOEXEC)
                guard fd >= 0 else { throw MultipartError.io("cannot open the spooled body: \(String(cString: strerror(errno)))", code: errno) }
                defer { close(fd) }
                var buffer = [UInt8](repeating: 0, count: 256 * 1024)
                while true {
                    let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                    if n < 0 {
                        if errno == EINTR { continue }
                        throw MultipartError.io("cannot read the spooled body: \(String(cString: strerror(errno)))", code: errno)
                    }
                    if n == 0 { break }
                    try buffer.withUnsafeBytes { try parser.feed(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
                }
            }
            return try parser.finish()
        } catch {
            parser.discard()
            throw error
        }
    }

    /// Deletes the spool files of `.file` parts.
    public static func removeSpoolFiles(_ parts: [MultipartPart]) {
        for part in parts { if case .file(let path, _) = part.body { unlink(path) } }
    }

    /// The boundary parameter of a multipart/form-data Content-Type.
    public static func boundary(fromContentType contentType: String) throws -> String {
        guard let (type, params) = parseHeaderParameters(contentType),
              type.lowercased() == "multipart/form-data" else {
            throw MultipartError.notMultipart(contentType: contentType)
        }
        guard let boundary = params.first(where: { $0.name.lowercased() == "boundary" })?.value else {
            throw MultipartError.invalidBoundary("the Content-Type has no boundary parameter")
        }
        guard !boundary.isEmpty, boundary.utf8.count <= 70 else {
            throw MultipartError.invalidBoundary("it must be 1 to 70 characters long")
        }
        guard boundary.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) else {
            throw MultipartError.invalidBoundary("it contains control or non-ASCII characters")
        }
        return boundary
    }
}

/// Splits `value; a=b; c="d e"` into the leading value and its parameters (quoted strings unescaped).
/// nil when the parameter syntax is malformed.
func parseHeaderParameters(_ header: String) -> (String, [(name: String, value: String)])? {
    let s = Array(header.utf8)
    var i = 0
    func skipWS() { while i < s.count, s[i] == 0x20 || s[i] == 0x09 { i += 1 } }
    skipWS()
    let valueStart = i
    while i < s.count, s[i] != 0x3B { i += 1 }
    var valueEnd = i
    while valueEnd > valueStart, s[valueEnd - 1] == 0x20 || s[valueEnd - 1] == 0x09 { valueEnd -= 1 }
    let value = String(decoding: s[valueStart..<valueEnd], as: UTF8.self)
    var params: [(name: String, value: String)] = []
    while i < s.count {
        guard s[i] == 0x3B else { return nil }
        i += 1
        skipWS()
        if i == s.count { break }            // trailing ';'
        let nameStart = i
        while i < s.count, isTokenChar(s[i]) { i += 1 }
        guard i > nameStart else { return nil }
        let name = String(decoding: s[nameStart..<i], as: UTF8.self)
        skipWS()
        guard i < s.count, s[i] == 0x3D else { return nil }
        i += 1
        skipWS()
        var v: [UInt8] = []
        if i < s.count, s[i] == 0x22 {
            i += 1
            var closed = false
            while i < s.count {
                let b = s[i]
                if b == 0x5C {
                    guard i + 1 < s.count else { return nil }
                    v.append(s[i + 1]); i += 2; continue
                }
                if b == 0x22 { closed = true; i += 1; break }
                v.append(b); i += 1
            }
            guard closed else { return nil }
        } else {
            // token; be lenient with characters browsers leave unquoted, stop at ';' or whitespace.
            while i < s.count, s[i] != 0x3B, s[i] != 0x20, s[i] != 0x09 { v.append(s[i]); i += 1 }
            guard !v.isEmpty else { return nil }
        }
        params.append((name: name, value: String(decoding: v, as: UTF8.self)))
        skipWS()
    }
    return (value, params)
}

/// Streaming multipart/form-data parser: feed the body in slices of any size, then `finish()`.
public struct MultipartStreamParser {
    enum State { case preamble, afterDelimiter(inBody: Bool), padding, headers, body, epilogue }

    let delimiter: [UInt8]           // CRLF "--" boundary
    let maxPartBytes: Int
    let maxParts: Int
    let memoryThreshold: Int
    let spoolDirectory: String
    let maxHeaderBytes = 16 * 1024

    var state: State = .preamble
    var buffer: [UInt8] = [0x0D, 0x0A]   // a virtual CRLF so a body starting with --boundary matches
    var sawDelimiter = false
    var parts: [MultipartPart] = []
    var current: PartAccumulator?
    var headerBytes = 0
    var paddingBytes = 0

    struct PartAccumulator {
        var headers = HTTPHeaders()
        var name = ""
        var filename: String?
        var contentType: String?
        var memory: [UInt8] = []
        var fd: Int32 = -1
        var path: String?
        var length = 0
    }

    /// A parser for `boundary` (see `MultipartParser.boundary(fromContentType:)`).
    public init(boundary: String, maxPartBytes: Int, maxParts: Int, memoryThreshold: Int = 1024 * 1024, spoolDirectory: String) {
        delimiter = [0x0D, 0x0A, 0x2D, 0x2D] + Array(boundary.utf8)
        self.maxPartBytes = maxPartBytes; self.maxParts = maxParts
        self.memoryThreshold = memoryThreshold; self.spoolDirectory = spoolDirectory
    }

    /// Parses the next slice of the body.
    public mutating func feed(_ bytes: UnsafeRawBufferPointer) throws {
        if case .epilogue = state { return }
        buffer.append(contentsOf: bytes)
        var pos = 0
        defer { buffer.removeSubrange(0..<pos) }
        loop: while true {
            switch state {
            case .preamble, .body:
                let inBody: Bool
                if case .body = state { inBody = true } else { inBody = false }
                if let k = find(delimiter, in: buffer, from: pos) {
                    if inBody { try appendData(buffer[pos..<k]) }
                    pos = k + delimiter.count
                    state = .afterDelimiter(inBody: inBody)
                } else {
                    let safe = buffer.count - (delimiter.count - 1)
                    if safe > pos {
                        if inBody { try appendData(buffer[pos..<safe]) }
                        pos = safe
                    }
                    break loop
                }
            case .afterDelimiter(let inBody):
                guard buffer.count - pos >= 2 else { break loop }
                let a = buffer[pos], b = buffer[pos + 1]
                if a == 0x2D && b == 0x2D {
                    sawDelimiter = true
                    if inBody { try finishPart() }
                    state = .epilogue
                    pos = buffer.count
                    break loop
                } else if a == 0x0D && b == 0x0A {
                    sawDelimiter = true
                    if inBody { try finishPart() }
                    try startPart()
                    pos += 2
                    state = .headers
                } else if a == 0x20 || a == 0x09 {
                    sawDelimiter = true
                    if inBody { try finishPart() }
                    try startPart()
                    paddingBytes = 0
                    state = .padding
                } else {
                    // "--boundary" followed by something else: not a delimiter, it was content.
                    if inBody { try appendData(delimiter[...]) }
                    state = inBody ? .body : .preamble
                }
            case .padding:
                while pos < buffer.count, buffer[pos] == 0x20 || buffer[pos] == 0x09 {
                    pos += 1; paddingBytes += 1
                    if paddingBytes > 256 { throw MultipartError.malformedHeader("too much whitespace after a boundary") }
                }
                guard buffer.count - pos >= 2 else { break loop }
                guard buffer[pos] == 0x0D, buffer[pos + 1] == 0x0A else {
                    throw MultipartError.malformedHeader("unexpected characters after a boundary line")
                }
                pos += 2
                state = .headers
            case .headers:
                guard let eol = find([0x0D, 0x0A], in: buffer, from: pos) else {
                    if headerBytes + (buffer.count - pos) > maxHeaderBytes { throw MultipartError.headerTooLong(limit: maxHeaderBytes) }
                    break loop
                }
                headerBytes += eol - pos + 2
                if headerBytes > maxHeaderBytes { throw MultipartError.headerTooLong(limit: maxHeaderBytes) }
                let line = Array(buffer[pos..<eol])
                pos = eol + 2
                if line.isEmpty {
                    try finishHeaders()
                    state = .body
                } else {
                    try addHeaderLine(line)
                }
            case .epilogue:
                pos = buffer.count
                break loop
            }
        }
    }

    /// The parts, in order; throws if the closing boundary was not seen.
    public mutating func finish() throws -> [MultipartPart] {
        guard case .epilogue = state else {
            throw sawDelimiter ? MultipartError.missingFinalBoundary : MultipartError.missingInitialBoundary
        }
        return parts
    }

    /// Removes every spool file created so far (after an error).
    public mutating func discard() {
        MultipartParser.removeSpoolFiles(parts)
        parts = []
        if let c = current {
            if c.fd >= 0 { close(c.fd) }
            if let path = c.path { unlink(path) }
        }
        current = nil
    }

    private mutating func startPart() throws {
        if parts.count >= maxParts { throw MultipartError.tooManyParts(limit: maxParts) }
        current = PartAccumulator()
        headerBytes = 0
    }

    private mutating func addHeaderLine(_ line: [UInt8]) throws {
        if line[0] == 0x20 || line[0] == 0x09 { throw MultipartError.malformedHeader("obsolete line folding") }
        switch HTTPRequestParser.parseField(line) {
        case .failure(let error): throw MultipartError.malformedHeader(error.detail.lowercased().trimmingCharacters(in: ["."]))
        case .success(let (name, value)): current!.headers.add(name, value)
        }
    }

    private mutating func finishHeaders() throws {
        guard let disposition = current!.headers["Content-Disposition"] else { throw MultipartError.missingName }
        guard let (type, params) = parseHeaderParameters(disposition) else {
            throw MultipartError.malformedHeader("cannot parse Content-Disposition '\(disposition)'")
        }
        guard type.lowercased() == "form-data",
              let name = params.first(where: { $0.name.lowercased() == "name" })?.value else {
            throw MultipartError.missingName
        }
        current!.name = name
        current!.filename = params.first(where: { $0.name.lowercased() == "filename" })?.value
        if let extended = params.first(where: { $0.name.lowercased() == "filename*" })?.value,
           let decoded = decodeExtendedValue(extended) {
            current!.filename = decoded
        }
        current!.contentType = current!.headers["Content-Type"]
    }

    private mutating func appendData(_ data: ArraySlice<UInt8>) throws {
        guard !data.isEmpty else { return }
        guard current != nil else { return }
        current!.length += data.count
        if current!.length > maxPartBytes {
            throw MultipartError.partTooLarge(name: current!.name, limit: maxPartBytes)
        }
        if current!.fd < 0 && current!.length > memoryThreshold {
            let (fd, path) = try createSpoolFile(directory: spoolDirectory, prefix: "stylist-part-")
            current!.fd = fd
            current!.path = path
            try writeAll(fd: fd, current!.memory[...])
            current!.memory = []
        }
        if current!.fd >= 0 {
            try writeAll(fd: current!.fd, data)
        } else {
            current!.memory.append(contentsOf: data)
        }
    }

    private mutating func finishPart() throws {
        guard let c = current else { return }
        let body: HTTPBody
        if c.fd >= 0 {
            close(c.fd)
            body = .file(path: c.path!, length: c.length)
        } else {
            body = c.memory.isEmpty ? .empty : .bytes(c.memory)
        }
        parts.append(MultipartPart(name: c.name, filename: c.filename, contentType: c.contentType, headers: c.headers, body: body))
        current = nil
    }

    private func writeAll(fd: Int32, _ data: ArraySlice<UInt8>) throws {
        do { try writeFully(fd: fd, data) } catch let e as SpoolError { throw MultipartError.io(e.description, code: e.code) }
    }
}

/// RFC 8187 `UTF-8''percent%20encoded`.
func decodeExtendedValue(_ value: String) -> String? {
    let parts = value.split(separator: "'", maxSplits: 2, omittingEmptySubsequences: false)
    guard parts.count == 3, parts[0].lowercased() == "utf-8" else { return nil }
    return RequestTarget.percentDecode(ArraySlice(parts[2].utf8), plusIsSpace: false)
}

/// First index of `needle` in `haystack` at or after `from`.
func find(_ needle: [UInt8], in haystack: [UInt8], from: Int) -> Int? {
    guard haystack.count - from >= needle.count else { return nil }
    return haystack.withUnsafeBytes { h -> Int? in
        needle.withUnsafeBytes { n -> Int? in
            let base = h.baseAddress!, first = Int32(n[0])
            var i = from
            let last = h.count - n.count
            while i <= last {
                guard let p = memchr(base + i, first, last - i + 1) else { return nil }
                let k = UnsafeRawPointer(p) - base
                if memcmp(base + k, n.baseAddress!, n.count) == 0 { return k }
                i = k + 1
            }
            return nil
        }
    }
}
