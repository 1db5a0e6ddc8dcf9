/// Limits the request parser enforces.
public struct HTTPParserLimits: Sendable, Equatable {
    /// Request line + header block bytes (CRLFs included); 431 beyond. Trailers get the same allowance.
    public var maxHeaderBytes: Int
    /// Header field count; 431 beyond. Trailers get the same allowance.
    public var maxHeaderCount: Int
    /// Body bytes (decoded, for chunked); 413 beyond.
    public var maxBodyBytes: Int
    /// A chunk-size line with its extensions, bytes; 400 beyond.
    public var maxChunkLineBytes: Int
    /// Limits, with the product defaults.
    public init(maxHeaderBytes: Int = 16 * 1024, maxHeaderCount: Int = 100, maxBodyBytes: Int = 25 * 1024 * 1024, maxChunkLineBytes: Int = 4096) {
        self.maxHeaderBytes = maxHeaderBytes; self.maxHeaderCount = maxHeaderCount
        self.maxBodyBytes = maxBodyBytes; self.maxChunkLineBytes = maxChunkLineBytes
    }
}

/// How a request's body is delimited.
public enum HTTPBodyFraming: Sendable, Equatable {
    /// No body.
    case none
    /// Exactly this many bytes (always > 0).
    case length(Int)
    /// Chunked transfer coding.
    case chunked
}

/// A request the parser rejects; the connection must be closed after answering it.
public struct HTTPParserError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The status to answer with (400, 411, 413, 431, 501, 505).
    public var status: Int
    /// Problem detail for the client.
    public var detail: String
    /// A rejection from its status and detail.
    public init(status: Int, detail: String) { self.status = status; self.detail = detail }
    public var description: String { "\(status) \(httpReasonPhrase(status)): \(detail)" }
    /// The problem+json response for this error.
    public var response: HTTPResponse {
        HTTPResponse.problem(status: status, title: httpReasonPhrase(status), detail: detail)
    }
}

/// What the parser found in the bytes fed so far.
public enum HTTPParserEvent: Sendable, Equatable {
    /// A complete head and how its body is framed.
    case head(HTTPRequestHead, HTTPBodyFraming)
    /// Some body bytes (decoded from chunked framing); a body may arrive in any number of events.
    case body([UInt8])
    /// The request is complete; the parser is ready for the next one.
    case end
    /// The request is malformed or over a limit; the parser accepts no more input.
    case error(HTTPParserError)
}

/// A pure HTTP/1.1 request parser: feed it byte slices of any size; it emits head, body and end events,
/// one request after another (pipelining). Memory is bounded by the configured header limits; body bytes
/// are handed out as they arrive and never buffered.
public struct HTTPRequestParser: Sendable {
    enum State: Sendable, Equatable {
        case head
        case endPending
        case body(remaining: Int)
        case chunkSize
        case chunkData(remaining: Int)
        case chunkDataCR
        case chunkDataLF
        case trailers
        case failed
    }

    /// The limits in force.
    public let limits: HTTPParserLimits
    var state: State = .head
    var line: [UInt8] = []            // current line, without CR/LF
    var lines: [[UInt8]] = []         // completed head lines
    var blockBytes = 0                // bytes of the current head or trailer block
    var pendingCR = false
    var bodyReceived = 0
    var trailerCount = 0

    /// A parser waiting for the first request.
    public init(limits: HTTPParserLimits = HTTPParserLimits()) {
        self.limits = limits
        line.reserveCapacity(256)
    }

    /// Whether the parser is between requests with no partial request buffered.
    public var isIdle: Bool { state == .head && line.isEmpty && lines.isEmpty && !pendingCR && blockBytes == 0 }

    /// Whether the parser has rejected the stream.
    public var hasFailed: Bool { state == .failed }

    /// Parses as much of `bytes` as possible and returns every event, in order. All bytes are consumed
    /// (after an error the rest are ignored).
    public mutating func feed(_ bytes: UnsafeRawBufferPointer) -> [HTTPParserEvent] {
        var events: [HTTPParserEvent] = []
        var offset = 0
        while true {
            let slice = UnsafeRawBufferPointer(rebasing: bytes[offset...])
            let (event, consumed) = next(slice)
            offset += consumed
            guard let event else { break }
            events.append(event)
            if case .error = event { break }
        }
        return events
    }

    /// Convenience for `feed` with an array.
    public mutating func feed(_ bytes: [UInt8]) -> [HTTPParserEvent] {
        bytes.withUnsafeBytes { feed($0) }
    }

    /// Parses until one event is ready or `bytes` is used up. Returns the event (nil: more input is
    /// needed) and how many bytes were consumed; call again with the remaining bytes.
    public mutating func next(_ bytes: UnsafeRawBufferPointer) -> (event: HTTPParserEvent?, consumed: Int) {
        var i = 0
        let n = bytes.count
        while true {
            switch state {
            case .failed:
                return (nil, n)

            case .endPending:
                state = .head
                return (.end, i)

            case .head, .trailers:
                let isTrailers = state == .trailers
                while i < n {
                    let b = bytes[i]
                    i += 1
                    blockBytes += 1
                    if blockBytes > limits.maxHeaderBytes {
                        return (fail(431, isTrailers ? "Trailer section exceeds \(limits.maxHeaderBytes) bytes."
                                     : "Request line and headers exceed \(limits.maxHeaderBytes) bytes."), i)
                    }
                    if pendingCR {
                        pendingCR = false
                        guard b == 0x0A else { return (fail(400, "Bare CR in the header section."), i) }
                        if let event = finishHeadLine(isTrailers: isTrailers) { return (event, i) }
                        continue
                    }
                    if b == 0x0D { pendingCR = true; continue }
                    if b == 0x0A { return (fail(400, "Bare LF in the header section; lines must end with CRLF."), i) }
                    line.append(b)
                }
                return (nil, i)

            case .body(let remaining):
                guard let chunk = Self.take(upTo: remaining, from: bytes, at: &i) else { return (nil, i) }
                state = remaining == chunk.count ? .endPending : .body(remaining: remaining - chunk.count)
                return (.body(chunk), i)

            case .chunkSize:
                while i < n {
                    let b = bytes[i]
                    i += 1
                    if pendingCR {
                        pendingCR = false
                        guard b == 0x0A else { return (fail(400, "Bare CR in a chunk-size line."), i) }
                        if let event = finishChunkSizeLine() { return (event, i) }
                        break
                    }
                    if b == 0x0D { pendingCR = true; continue }
                    if b == 0x0A { return (fail(400, "Bare LF in a chunk-size line."), i) }
                    line.append(b)
                    if line.count > limits.maxChunkLineBytes {
                        return (fail(400, "Chunk-size line exceeds \(limits.maxChunkLineBytes) bytes."), i)
                    }
                }
                if state == .chunkSize { return (nil, i) }

            case .chunkData(let remaining):
                guard let chunk = Self.take(upTo: remaining, from: bytes, at: &i) else { return (nil, i) }
                state = remaining == chunk.count ? .chunkDataCR : .chunkData(remaining: remaining - chunk.count)
                return (.body(chunk), i)

            case .chunkDataCR:
                guard i < n else { return (nil, i) }
                guard bytes[i] == 0x0D else { return (fail(400, "Chunk data is not followed by CRLF."), i + 1) }
                i += 1
                state = .chunkDataLF

            case .chunkDataLF:
                guard i < n else { return (nil, i) }
                guard bytes[i] == 0x0A else { return (fail(400, "Chunk data is not followed by CRLF."), i + 1) }
                i += 1
                state = .chunkSize
            }
        }
    }

    /// Up to `remaining` body bytes of `bytes` from `i`, advancing `i`; nil when none are left to read.
    private static func take(upTo remaining: Int, from bytes: UnsafeRawBufferPointer, at i: inout Int) -> [UInt8]? {
        let count = min(remaining, bytes.count - i)
        if count == 0 { return nil }
        defer { i += count }
        return [UInt8](UnsafeRawBufferPointer(rebasing: bytes[i..<(i + count)]))
    }

    private mutating func fail(_ status: Int, _ detail: String) -> HTTPParserEvent {
        state = .failed
        line = []
        lines = []
        return .error(HTTPParserError(status: status, detail: detail))
    }

    private mutating func resetBlock() {
        line.removeAll(keepingCapacity: true)
        lines = []
        blockBytes = 0
        pendingCR = false
    }

    /// A CRLF ended `line` in the head or trailer section.
    private mutating func finishHeadLine(isTrailers: Bool) -> HTTPParserEvent? {
        if line.isEmpty {
            if isTrailers {
                resetBlock()
                state = .head
                return .end
            }
            if lines.isEmpty {
                // RFC 9112 §2.2: ignore empty lines before the request line.
                blockBytes = 0
                return nil
            }
            return finishHead()
        }
        if line[0] == 0x20 || line[0] == 0x09 {
            return fail(400, "Obsolete line folding (a header line starting with whitespace) is not accepted.")
        }
        if isTrailers {
            trailerCount += 1
            if trailerCount > limits.maxHeaderCount {
                return fail(431, "More than \(limits.maxHeaderCount) trailer fields.")
            }
            if case .failure(let error) = Self.parseField(line) { return fail(error.status, error.detail) }
            line.removeAll(keepingCapacity: true)
            return nil
        }
        if lines.count > limits.maxHeaderCount {   // request line + maxHeaderCount fields
            return fail(431, "More than \(limits.maxHeaderCount) header fields.")
        }
        lines.append(line)
        line.removeAll(keepingCapacity: true)
        return nil
    }

    private mutating func finishHead() -> HTTPParserEvent {
        let parsed = Self.parseHead(lines, limits: limits)
        resetBlock()
        switch parsed {
        case .failure(let error):
            return fail(error.status, error.detail)
        case .success(let (head, framing)):
            bodyReceived = 0
            switch framing {
            case .none: state = .endPending
            case .length(let n): state = .body(remaining: n)
            case .chunked: state = .chunkSize; trailerCount = 0
            }
            return .head(head, framing)
        }
    }

    private mutating func finishChunkSizeLine() -> HTTPParserEvent? {
        let bytes = line
        line.removeAll(keepingCapacity: true)
        var size = 0
        var i = 0
        while i < bytes.count, let digit = hexValue(bytes[i]) {
            if i >= 15 { return fail(400, "Chunk size has too many hex digits.") }
            size = size << 4 | digit
            i += 1
        }
        if i == 0 { return fail(400, "Chunk size is not a hexadecimal number.") }
        // Optional BWS, then chunk extensions: *( BWS ";" BWS name [ BWS "=" BWS value ] ), not interpreted.
        while i < bytes.count, bytes[i] == 0x20 || bytes[i] == 0x09 { i += 1 }
        if i < bytes.count {
            guard bytes[i] == 0x3B else { return fail(400, "Unexpected characters after the chunk size.") }
            for b in bytes[i...] where (b < 0x20 && b != 0x09) || b == 0x7F {
                _ = b
                return fail(400, "Control character in a chunk extension.")
            }
        }
        if size == 0 {
            state = .trailers
            blockBytes = 0
            return nil
        }
        if size > limits.maxBodyBytes - bodyReceived {
            return fail(413, "Request body exceeds \(limits.maxBodyBytes) bytes.")
        }
        bodyReceived += size
        state = .chunkData(remaining: size)
        return nil
    }

    // MARK: - Head parsing (pure functions)

    static func parseHead(_ lines: [[UInt8]], limits: HTTPParserLimits) -> Result<(HTTPRequestHead, HTTPBodyFraming), HTTPParserError> {
        func bad(_ status: Int, _ detail: String) -> Result<(HTTPRequestHead, HTTPBodyFraming), HTTPParserError> {
            .failure(HTTPParserError(status: status, detail: detail))
        }
        let requestLine = lines[0]
        // method SP request-target SP HTTP-version, single spaces.
        let parts = requestLine.split(separator: 0x20, omittingEmptySubsequences: false)
        guard parts.count == 3, !parts[0].isEmpty, !parts[1].isEmpty else {
            return bad(400, "Malformed request line; expected 'METHOD target HTTP/1.1'.")
        }
        guard parts[0].allSatisfy(isTokenChar) else { return bad(400, "Malformed request method.") }
        guard parts[1].allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            return bad(400, "Request target contains whitespace, control or non-ASCII characters.")
        }
        let v = Array(parts[2])
        guard v.count == 8, v[0] == 0x48, v[1] == 0x54, v[2] == 0x54, v[3] == 0x50, v[4] == 0x2F,
              isDigit(v[5]), v[6] == 0x2E, isDigit(v[7]) else {
            return bad(400, "Malformed HTTP version in the request line.")
        }
        let version = HTTPVersion(major: Int(v[5] - 0x30), minor: Int(v[7] - 0x30))
        guard version == .http1_1 || version == .http1_0 else {
            return bad(505, "Only HTTP/1.0 and HTTP/1.1 are supported; got \(version).")
        }
        let method = String(decoding: parts[0], as: UTF8.self)
        let target = String(decoding: parts[1], as: UTF8.self)

        var headers = HTTPHeaders()
        headers.storage.reserveCapacity(lines.count - 1)
        for line in lines.dropFirst() {
            switch parseField(line) {
            case .failure(let error): return .failure(error)
            case .success(let (name, value)): headers.storage.append((name: name, value: value))
            }
        }

        // Target forms: origin-form, absolute-form, asterisk-form (OPTIONS), authority-form (CONNECT).
        let path: String
        let query: [(name: String, value: String)]
        if target == "*" {
            guard method == "OPTIONS" else { return bad(400, "The '*' request target is only valid for OPTIONS.") }
            path = "*"; query = []
        } else {
            var originForm = Substring(target)
            if !target.hasPrefix("/") {
                let lower = target.lowercased()
                guard lower.hasPrefix("http://") || lower.hasPrefix("https://") else {
                    return bad(400, "Request target must be an absolute path such as '/v1/jobs'.")
                }
                let afterScheme = target[target.index(target.startIndex, offsetBy: lower.hasPrefix("https://") ? 8 : 7)...]
                if let slash = afterScheme.firstIndex(where: { $0 == "/" || $0 == "?" }) {
                    originForm = afterScheme[slash...]
                    if originForm.hasPrefix("?") { originForm = Substring("/" + originForm) }
                } else {
                    originForm = "/"
                }
            }
            guard let decoded = RequestTarget.decode(String(originForm)) else {
                return bad(400, "Request target has an invalid percent-encoding.")
            }
            path = decoded.path; query = decoded.query
            if path.split(separator: "/", omittingEmptySubsequences: false).contains(where: { $0 == ".." || $0 == "." }) {
                return bad(400, "Request path contains a '.' or '..' segment.")
            }
        }

        let hosts = headers.values("Host")
        if hosts.count > 1 { return bad(400, "More than one Host header.") }
        if version == .http1_1 && hosts.isEmpty { return bad(400, "HTTP/1.1 request without a Host header.") }

        // Framing (RFC 9112 §6): reject every ambiguous shape.
        let contentLengths = headers.values("Content-Length")
        let transferEncodings = headers.values("Transfer-Encoding")
        var framing = HTTPBodyFraming.none
        if !transferEncodings.isEmpty {
            if !contentLengths.isEmpty {
                return bad(400, "Both Content-Length and Transfer-Encoding are present.")
            }
            if version == .http1_0 { return bad(400, "Transfer-Encoding is not allowed in an HTTP/1.0 request.") }
            let codings = transferEncodings.flatMap { $0.split(separator: ",", omittingEmptySubsequences: false) }
                .map { $0.trimmingCharacters(in: [" ", "\t"]).lowercased() }
            if codings.contains("") { return bad(400, "Malformed Transfer-Encoding.") }
            if codings.filter({ $0 == "chunked" }).count > 1 { return bad(400, "Transfer-Encoding lists chunked more than once.") }
            if codings.last != "chunked" {
                return bad(400, "Transfer-Encoding must end with chunked; the body length cannot be determined.")
            }
            if codings.count > 1 {
                return bad(501, "Transfer codings other than chunked are not supported (got '\(transferEncodings.joined(separator: ", "))').")
            }
            framing = .chunked
        } else if !contentLengths.isEmpty {
            if contentLengths.count > 1 { return bad(400, "Content-Length is repeated.") }
            let raw = Array(contentLengths[0].utf8)
            guard !raw.isEmpty, raw.allSatisfy(isDigit) else {
                return bad(400, "Content-Length must be a non-negative decimal integer.")
            }
            var length = 0
            for d in raw {
                let (m, o1) = length.multipliedReportingOverflow(by: 10)
                let (s, o2) = m.addingReportingOverflow(Int(d - 0x30))
                if o1 || o2 { return bad(400, "Content-Length is too large to represent.") }
                length = s
            }
            if length > limits.maxBodyBytes {
                return bad(413, "Request body of \(length) bytes exceeds the limit of \(limits.maxBodyBytes) bytes.")
            }
            framing = length == 0 ? .none : .length(length)
        } else if method == "POST" || method == "PUT" || method == "PATCH" {
            return bad(411, "\(method) requires Content-Length or Transfer-Encoding: chunked.")
        }

        let head = HTTPRequestHead(method: method, target: target, path: path, query: query, version: version, headers: headers)
        return .success((head, framing))
    }

    /// Parses `name: value` (no whitespace before the colon, no control characters in the value).
    static func parseField(_ line: [UInt8]) -> Result<(String, String), HTTPParserError> {
        guard let colon = line.firstIndex(of: 0x3A) else {
            return .failure(HTTPParserError(status: 400, detail: "Header line without a colon."))
        }
        guard colon > 0 else { return .failure(HTTPParserError(status: 400, detail: "Header line with an empty name.")) }
        let name = line[..<colon]
        if let last = name.last, last == 0x20 || last == 0x09 {
            return .failure(HTTPParserError(status: 400, detail: "Whitespace between a header name and its colon."))
        }
        guard name.allSatisfy(isTokenChar) else {
            return .failure(HTTPParserError(status: 400, detail: "Invalid character in a header name."))
        }
        var start = colon + 1
        var end = line.count
        while start < end, line[start] == 0x20 || line[start] == 0x09 { start += 1 }
        while end > start, line[end - 1] == 0x20 || line[end - 1] == 0x09 { end -= 1 }
        for b in line[start..<end] where (b < 0x20 && b != 0x09) || b == 0x7F {
            _ = b
            return .failure(HTTPParserError(status: 400, detail: "Control character in a header value."))
        }
        return .success((String(decoding: name, as: UTF8.self), String(decoding: line[start..<end], as: UTF8.self)))
    }
}

@inline(__always) func isDigit(_ b: UInt8) -> Bool { b >= 0x30 && b <= 0x39 }

@inline(__always) func hexValue(_ b: UInt8) -> Int? {
    switch b {
    case 0x30...0x39: return Int(b - 0x30)
    case 0x41...0x46: return Int(b - 0x41 + 10)
    case 0x61...0x66: return Int(b - 0x61 + 10)
    default: return nil
    }
}

/// RFC 9110 tchar.
@inline(__always) func isTokenChar(_ b: UInt8) -> Bool {
    switch b {
    case 0x30...0x39, 0x41...0x5A, 0x61...0x7A: return true
    case 0x21, 0x23, 0x24, 0x25, 0x26, 0x27, 0x2A, 0x2B, 0x2D, 0x2E, 0x5E, 0x5F, 0x60, 0x7C, 0x7E: return true
    default: return false
    }
}

/// Percent-decoding of a request target into path and query.
enum RequestTarget {
    static func decode(_ target: String) -> (path: String, query: [(name: String, value: String)])? {
        let bytes = Array(target.utf8)
        let q = bytes.firstIndex(of: 0x3F) ?? bytes.count
        var rawPath = bytes[..<q]
        if let hash = rawPath.firstIndex(of: 0x23) { rawPath = rawPath[..<hash] }
        guard let path = percentDecode(rawPath, plusIsSpace: false) else { return nil }
        var query: [(name: String, value: String)] = []
        if q < bytes.count {
            var rawQuery = bytes[(q + 1)...]
            if let hash = rawQuery.firstIndex(of: 0x23) { rawQuery = rawQuery[..<hash] }
            for pair in rawQuery.split(separator: 0x26) where !pair.isEmpty {
                let eq = pair.firstIndex(of: 0x3D)
                let rawName = eq.map { pair[..<$0] } ?? pair[...]
                let rawValue = eq.map { pair[($0 + 1)...] } ?? []
                guard let name = percentDecode(rawName, plusIsSpace: true),
                      let value = percentDecode(rawValue, plusIsSpace: true) else { return nil }
                query.append((name: name, value: value))
            }
        }
        return (path, query)
    }

    /// nil for a malformed escape, a decoded NUL, or invalid UTF-8.
    static func percentDecode(_ bytes: ArraySlice<UInt8>, plusIsSpace: Bool) -> String? {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var i = bytes.startIndex
        while i < bytes.endIndex {
            let b = bytes[i]
            if b == 0x25 {
                guard i + 2 < bytes.endIndex, let hi = hexValue(bytes[i + 1]), let lo = hexValue(bytes[i + 2]) else { return nil }
                let v = UInt8(hi << 4 | lo)
                if v == 0 { return nil }
                out.append(v)
                i += 3
            } else {
                out.append(plusIsSpace && b == 0x2B ? 0x20 : b)
                i += 1
            }
        }
        return String(validating: out, as: UTF8.self)
    }
}
