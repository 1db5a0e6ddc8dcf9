import Dispatch
import Foundation
import HTTPCore
import ImageCodecs
import Jobs
import Logging
import StylePipeline

/// The v1 API (openapi.yaml) as an `HTTPResponder`: auth and routing in `preflight` (before any body
/// byte is read or `100 Continue` is sent), handlers in `respond`, one log line and metrics per
/// request. Blocking work (multipart parsing, fsync'd submission, style registration) runs on a
/// dedicated Dispatch queue, never on the Swift cooperative pool, so polls stay fast.
///
/// Decisions (also in openapi.yaml):
/// - **Idempotency-Key** (1-255 visible ASCII characters) is scoped to the API key that sent
///   it. Its digest is SHA-256 over the *parsed* form: every part's name, kind (file or field)
///   and SHA-256 of its content, in order — not the raw body, whose multipart boundary differs
///   between two runs of the same curl command. Filenames and part content types are ignored.
///   Same key + same digest within the TTL: `202` with the original job and
///   `Idempotency-Replayed: true`; same key + different digest: `422`.
/// - **queue_position** is 1-based among queued jobs (1 = the next job a worker takes), `null`
///   unless the job is queued. FIFO, so it only decreases.
/// - **?wait=N** holds the answer until the job has finished (succeeded, failed or canceled)
///   or N seconds pass, so `curl ...?wait=30` right after the POST answers with the finished job
///   even when it was still queued; intermediate changes (running, progress, queue position) are
///   on the SSE stream. N is capped at `wait_cap_seconds` (default 60) silently; a finished job
///   answers at once.
/// - **DELETE** of a queued job cancels it at once (`200`, the job with status `canceled`); of
///   a running job asks it to stop at its next layer (`202`, status still `running`); of a
///   finished job deletes it and its files (`204`); afterwards the id is `404`.
/// - **Result** of a job that is queued, running, failed or canceled is `409` (the detail says
///   which); expired `410`. The `ETag` is the SHA-256 of the file; the result is sent with
///   `Cache-Control: private, no-cache` so clients revalidate with `If-None-Match` (-> `304`).
/// - Uploaded images are checked from their headers before the `202`: `415` not PNG/JPEG
///   (by magic bytes; the part's declared type is ignored), `422` unreadable header, `413`
///   over `max_megapixels`, `400` smaller than 16 px once resized. Damage past the header is
///   found when the job decodes: the job then fails with `error.status` 422.
/// - Auth: with `api_keys` set every route but `/healthz` and `/readyz` needs
///   `Authorization: Bearer KEY` (401 otherwise, with `WWW-Authenticate: Bearer`), checked
///   before routing, so an unauthenticated client cannot probe which paths exist.
final class API: HTTPResponder, @unchecked Sendable {
    let config: StylistConfig
    let jobs: JobSystem
    let styles: StyleLibrary
    let catalog: ModelCatalog
    let metrics: Metrics
    let logger: Logger
    let spoolDirectory: String
    let openAPI: [UInt8]?
    private let stateLock = NSLock()
    private var _draining = false
    private var router = Router()
    static let ioQueue = DispatchQueue(label: "stylist.io", qos: .userInitiated, attributes: .concurrent)

    static let openRoutes: Set<String> = Set(["/healthz", "/readyz"]).union(WebPage.paths)
    static let jobFields: Set<String> = ["content", "style", "style_id", "model", "alpha", "style_weights",
                                         "preserve_color", "max_size", "format", "mask"]

    init(config: StylistConfig, jobs: JobSystem, styles: StyleLibrary, catalog: ModelCatalog, metrics: Metrics,
         logger: Logger, spoolDirectory: String, openAPI: [UInt8]?) {
        self.config = config
        self.jobs = jobs
        self.styles = styles
        self.catalog = catalog
        self.metrics = metrics
        self.logger = logger
        self.spoolDirectory = spoolDirectory
        self.openAPI = openAPI
        router = makeRouter()
    }

    /// True once shutdown began: readiness fails and new jobs and styles get 503.
    var draining: Bool {
        get { stateLock.lock(); defer { stateLock.unlock() }; return _draining }
        set { stateLock.lock(); _draining = newValue; stateLock.unlock() }
    }

    /// The (method, template) pairs served, for the openapi.yaml consistency test.
    var routeTable: [(method: String, template: String)] { router.table }

    private func makeRouter() -> Router {
        var r = Router()
        r.add("POST", "/v1/jobs") { [unowned self] in try await createJob($0) }
        r.add("GET", "/v1/jobs/{id}") { [unowned self] in try await getJob($0) }
        r.add("DELETE", "/v1/jobs/{id}") { [unowned self] in try deleteJob($0) }
        r.add("GET", "/v1/jobs/{id}/result") { [unowned self] in try getResult($0) }
        r.add("GET", "/v1/jobs/{id}/events") { [unowned self] in try getEvents($0) }
        r.add("POST", "/v1/styles") { [unowned self] in try await createStyle($0) }
        r.add("GET", "/v1/styles") { [unowned self] in listStyles($0) }
        r.add("GET", "/v1/styles/{id}") { [unowned self] in try getStyle($0) }
        r.add("DELETE", "/v1/styles/{id}") { [unowned self] in try await deleteStyle($0) }
        r.add("GET", "/v1/models") { [unowned self] _ in listModels() }
        r.add("GET", "/healthz") { _ in .json(.object([("status", "ok")])) }
        r.add("GET", "/readyz") { [unowned self] _ in try readyz() }
        r.add("GET", "/metrics") { [unowned self] _ in metricsText() }
        r.add("GET", "/openapi.yaml") { [unowned self] _ in try openAPIDocument() }
        addWebPageRoutes(&r)   // WebPage.swift: GET /, /app.js, /app.css, /v1/styles/{id}/image
        return r
    }

    // MARK: HTTPResponder

    func preflight(_ head: HTTPRequestHead) -> HTTPResponse? {
        let start = DispatchTime.now().uptimeNanoseconds
        var refusal: APIError?
        var route = "unmatched"
        if let e = authenticate(head) {
            refusal = e
        } else {
            switch router.match(method: head.method, path: head.path) {
            case .notFound:
                refusal = APIError(404, "No resource at \(head.path).")
            case .methodNotAllowed(let allow, let template):
                route = template
                refusal = APIError(405, "\(head.method) is not allowed on \(head.path); allowed: \(allow.joined(separator: ", ")).",
                                   headers: ["Allow": allow.joined(separator: ", ")])
            case .found(_, _, let template):
                route = template
                if head.method != "POST" && Self.announcesBody(head) {
                    // Refused before a byte of it is read: a large body on /healthz would otherwise be received in full.
                    refusal = APIError(413, "\(head.method) \(template) takes no request body.")
                } else if head.method == "POST" {
                    if draining { refusal = APIError(503, "The server is shutting down.", headers: ["Retry-After": "5"]) }
                    else if let ct = head.headers["Content-Type"], !ct.lowercased().hasPrefix("multipart/form-data") {
                        refusal = APIError(415, "Send multipart/form-data (curl -F), not \(ct).")
                    }
                }
            }
        }
        guard let refusal else { return nil }
        let response = refusal.response
        finish(head, route: route, response: response, start: start, remote: nil)
        return response
    }

    /// Whether the request head says a body follows (a non-zero length, or chunked).
    static func announcesBody(_ head: HTTPRequestHead) -> Bool {
        if head.headers["Transfer-Encoding"] != nil { return true }
        if let length = head.headers["Content-Length"], let n = Int(length.trimmingCharacters(in: .whitespaces)) { return n > 0 }
        return false
    }

    func respond(to request: HTTPRequest) async -> HTTPResponse {
        let start = DispatchTime.now().uptimeNanoseconds
        let head = request.head
        var route = "unmatched"
        var response: HTTPResponse
        switch router.match(method: head.method, path: head.path) {
        case .found(let handler, let params, let template):
            route = template
            do {
                response = try await handler(RequestContext(request: request, params: params, route: template))
            } catch let e as APIError {
                response = e.response
            } catch let e as ErrnoCarrying {
                logger.error("storage failed", metadata: ["path": "\(head.path)", "error": "\(e)"])
                response = APIError(storage: e).response
            } catch {
                // The error's text may name server paths: it goes to the log, not to the client.
                logger.error("handler failed", metadata: ["path": "\(head.path)", "error": "\(error)"])
                response = APIError(500, "Internal error; the server log has the details.").response
            }
        case .methodNotAllowed(let allow, let template):
            route = template
            response = APIError(405, "\(head.method) is not allowed on \(head.path).", headers: ["Allow": allow.joined(separator: ", ")]).response
        case .notFound:
            response = APIError(404, "No resource at \(head.path).").response
        }
        finish(head, route: route, response: response, start: start, remote: request.remoteAddress)
        response.headers.remove("X-Job-Id")   // only for the log line
        return response
    }

    private func finish(_ head: HTTPRequestHead, route: String, response: HTTPResponse, start: UInt64, remote: String?) {
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        metrics.recordRequest(route: route, method: Metrics.methodLabel(head.method), status: response.status, seconds: seconds)
        var meta: Logger.Metadata = [
            "method": "\(head.method)", "path": "\(head.path)", "route": "\(route)",
            "status": "\(response.status)", "ms": "\(String(format: "%.2f", seconds * 1000))",
        ]
        if let remote { meta["remote"] = "\(remote)" }
        if let job = response.headers["X-Job-Id"] { meta["job"] = "\(job)" }
        logger.info("request", metadata: meta)
    }

    // MARK: Auth

    private func authenticate(_ head: HTTPRequestHead) -> APIError? {
        guard !config.apiKeys.isEmpty, !Self.openRoutes.contains(head.path) else { return nil }
        guard let auth = head.headers["Authorization"] else {
            return APIError(401, "An API key is required: send 'Authorization: Bearer KEY'.",
                            headers: ["WWW-Authenticate": "Bearer realm=\"stylist\""])
        }
        let parts = auth.split(separator: " ", maxSplits: 1)
        if parts.count == 2, parts[0].lowercased() == "bearer" {
            // Digests of equal length are compared, so the time taken says nothing of a key's length.
            let given = Array(SHA256Digest.hex(Array(parts[1].trimmingCharacters(in: .whitespaces).utf8)).utf8)
            var ok = false
            for key in config.apiKeys where Self.constantTimeEqual(given, Array(SHA256Digest.hex(Array(key.utf8)).utf8)) { ok = true }
            if ok { return nil }
        }
        return APIError(401, "The API key is not valid.",
                        headers: ["WWW-Authenticate": "Bearer realm=\"stylist\", error=\"invalid_token\""])
    }

    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var diff: UInt8 = 0
        for i in 0..<a.count { diff |= a[i] ^ b[i] }
        return diff == 0
    }

    /// The part of the idempotency scope that identifies the client (its API key's hash).
    private func clientScope(_ head: HTTPRequestHead) -> String {
        owner(head).map { $0 + ":" } ?? ""
    }

    /// The client identity jobs and styles are scoped to when API keys are configured (a hash of
    /// the key, never the key); nil when the server is open, so everything is shared.
    func owner(_ head: HTTPRequestHead) -> String? {
        guard !config.apiKeys.isEmpty, let auth = head.headers["Authorization"] else { return nil }
        let token = auth.split(separator: " ", maxSplits: 1).last.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
        return String(SHA256Digest.hex(Array(token.utf8)).prefix(32))
    }

    // MARK: Helpers

    /// Runs blocking work on the I/O queue, off the cooperative pool.
    static func offload<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<T, Error>) in
            ioQueue.async { c.resume(with: Result { try body() }) }
        }
    }

    private func parseForm(_ request: HTTPRequest, maxParts: Int) throws -> [MultipartPart] {
        guard let ct = request.head.headers["Content-Type"] else {
            throw APIError(415, "Send multipart/form-data (curl -F); the request has no Content-Type.")
        }
        do {
            return try MultipartParser.parse(body: request.body, contentType: ct, maxPartBytes: config.http.maxBodyBytes,
                                             maxParts: maxParts, spoolDirectory: spoolDirectory,
                                             memoryThreshold: config.http.bodyMemoryThreshold)
        } catch let e as MultipartError {
            if case .notMultipart = e { throw APIError(415, e.description) }
            if case .io = e { throw APIError(storage: e) }
            throw APIError(e.isTooLarge ? 413 : 400, e.description)
        }
    }

    /// A text field, trimmed. `maxCharacters` counts Unicode scalars before trimming, as the
    /// `maxLength` of openapi.yaml does.
    private static func text(_ part: MultipartPart, limit: Int = 1024, maxCharacters: Int? = nil) throws -> String {
        guard part.body.count <= limit else { throw APIError(400, "Field '\(part.name)' is longer than \(limit) bytes.") }
        let bytes = try part.body.readAll()
        guard let s = String(validating: bytes, as: UTF8.self) else { throw APIError(400, "Field '\(part.name)' is not UTF-8 text.") }
        if let maxCharacters, s.unicodeScalars.count > maxCharacters {
            throw APIError(400, "Field '\(part.name)' is longer than \(maxCharacters) characters.")
        }
        return s.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Whether `s` is a number as JSON spells it (RFC 8259 §6; with `integer`, no fraction or
    /// exponent): what openapi.yaml's `type: number`/`integer` fields and parameters mean, so
    /// `.5`, `+1`, `1.`, `0x1p3`, `016` or `inf` are not numbers here although Swift parses them.
    static func isJSONNumber(_ s: String, integer: Bool = false) -> Bool {
        let b = Array(s.utf8)
        var i = 0
        func digits() -> Int { let start = i; while i < b.count, b[i] >= 0x30, b[i] <= 0x39 { i += 1 }; return i - start }
        if i < b.count, b[i] == 0x2D { i += 1 }                                    // -
        if i < b.count, b[i] == 0x30 { i += 1 } else if digits() == 0 { return false }
        if !integer, i < b.count, b[i] == 0x2E { i += 1; guard digits() > 0 else { return false } }   // .
        if !integer, i < b.count, b[i] == 0x65 || b[i] == 0x45 {                  // e E
            i += 1
            if i < b.count, b[i] == 0x2B || b[i] == 0x2D { i += 1 }
            guard digits() > 0 else { return false }
        }
        return i == b.count
    }

    /// One style weight: 1-9 digits with an optional fraction (`2`, `0.7`, `1.`, `.25`), the
    /// `style_weights` pattern of openapi.yaml. No sign or exponent, so it is never negative or infinite.
    static func isWeight(_ s: String) -> Bool {
        let parts = s.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        let isDigits = { (t: Substring) in t.utf8.allSatisfy { $0 >= 0x30 && $0 <= 0x39 } }
        guard parts.allSatisfy(isDigits), parts[0].count <= 9 else { return false }
        if parts.count == 1 { return (1...9).contains(parts[0].count) }
        return (parts[0].count + parts[1].count) > 0 && parts[1].count <= 9
    }

    private static func digest(_ part: MultipartPart) throws -> String {
        switch part.body {
        case .empty: return SHA256Digest.hex([])
        case .bytes(let b): return SHA256Digest.hex(b)
        case .file(let path, _): return try SHA256Digest.hex(file: URL(fileURLWithPath: path))
        }
    }

    /// The job, if this client may see it: another API key's job is 404, as if it did not exist.
    private func lookup(_ id: String, owner: String?) throws -> JobSnapshot {
        switch jobs.lookup(id: id) {
        case .found(let s) where s.record.owner == owner: return s
        case .found: throw APIError(404, "No job \(id).")
        case .expired(let t):
            throw APIError(410, "Job \(id) expired at \(JobsJSON.format(t.expiredAt)); its files were removed (job_ttl_seconds).")
        case .notFound: throw APIError(404, "No job \(id).")
        }
    }

    func jobJSON(_ snap: JobSnapshot) -> JSONValue {
        let r = snap.record
        let params = try? JobParameters(record: r.parameters)
        func date(_ d: Date?) -> JSONValue { d.map { .string(JobsJSON.format($0)) } ?? .null }
        let succeeded = r.status == .succeeded
        return .object([
            ("id", .string(r.id)),
            ("status", .string(r.status.rawValue)),
            ("progress", .double((r.progress * 10000).rounded() / 10000)),
            ("queue_position", snap.queuePosition.map(JSONValue.int) ?? .null),
            ("model", .optional(params?.model)),
            ("parameters", params?.json ?? .null),
            ("created_at", date(r.createdAt)),
            ("started_at", date(r.startedAt)),
            ("finished_at", date(r.finishedAt)),
            ("expires_at", date(r.expiresAt)),
            ("error", r.error.map { e in
                .object([("type", "about:blank"), ("title", .string(e.title)), ("status", .int(e.status)),
                         ("detail", .optional(e.detail))])
            } ?? .null),
            ("url", .string("/v1/jobs/\(r.id)")),
            ("events_url", .string("/v1/jobs/\(r.id)/events")),
            ("result_url", succeeded ? .string("/v1/jobs/\(r.id)/result") : .null),
            ("result_content_type", succeeded ? .optional(r.resultContentType) : .null),
            ("result_size", succeeded ? (r.resultSize.map(JSONValue.int) ?? .null) : .null),
        ])
    }

    // MARK: Jobs

    private func createJob(_ ctx: RequestContext) async throws -> HTTPResponse {
        if draining { throw APIError(503, "The server is shutting down.", headers: ["Retry-After": "5"]) }
        let key = ctx.head.headers["Idempotency-Key"]
        if let key {
            guard (1...255).contains(key.utf8.count), key.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
                throw APIError(400, "Idempotency-Key must be 1 to 255 visible ASCII characters.")
            }
        }
        let scopedKey = key.map { clientScope(ctx.head) + $0 }
        let owner = owner(ctx.head)
        let request = ctx.request
        let maxParts = config.maxStylesPerJob + 16
        return try await Self.offload { [self] in
            let parts = try parseForm(request, maxParts: maxParts)
            var consumed = false
            defer { if !consumed { MultipartParser.removeSpoolFiles(parts) } }
            let (params, inputs, styleIDs, digest) = try validateJob(parts, owner: owner)
            let result: SubmitResult
            do {
                result = try jobs.submit(inputs: inputs, styleIDs: styleIDs, parameters: params.record,
                                         idempotencyKey: scopedKey, requestDigest: digest, owner: owner)
            } catch let e as QueueFull {
                throw APIError(429, "The queue is full (\(e.capacity) jobs waiting); retry in \(e.retryAfter) s.",
                               headers: ["Retry-After": String(e.retryAfter)])
            } catch let e as IdempotencyKeyReused {
                throw APIError(422, "Idempotency-Key '\(key ?? e.key)' was already used with a different request (job \(e.existingJobID)).")
            } catch is JobSystemShuttingDown {
                throw APIError(503, "The server is shutting down.", headers: ["Retry-After": "5"])
            }
            consumed = result.created   // created: the spooled inputs were moved into the blob store
            let id = result.snapshot.record.id
            var headers: HTTPHeaders = ["Location": "/v1/jobs/\(id)", "X-Job-Id": id]
            if !result.created { headers["Idempotency-Replayed"] = "true" }
            return .json(jobJSON(result.snapshot), status: 202, headers: headers)
        }
    }

    /// Checks the form and every image header; returns the job's parameters, inputs, registered
    /// styles and the idempotency digest. Throws 400/413/415/422 `APIError`s.
    private func validateJob(_ parts: [MultipartPart], owner: String?) throws -> (JobParameters, [JobInput], [String], String) {
        var content: MultipartPart?
        var styleEntries: [(source: StyleSource, part: MultipartPart?)] = []
        var fields: [String: String] = [:]
        var uploads = 0
        var mask: MultipartPart?
        for part in parts {
            switch part.name {
            case "content":
                guard content == nil else { throw APIError(400, "Send exactly one 'content' file; got more than one.") }
                content = part
            case "style":
                styleEntries.append((.upload("style\(styleEntries.count)"), part))
                uploads += 1
            case "style_id":
                let id = try Self.text(part)
                guard let style = styles.get(id), style.owner == owner else { throw APIError(400, "Unknown style_id '\(id)'; register it with POST /v1/styles.") }
                styleEntries.append((.registered(id), nil))
            case "mask":
                guard mask == nil else { throw APIError(400, "Send at most one 'mask' file.") }
                mask = part
            case let name where Self.jobFields.contains(name):
                guard fields[name] == nil else { throw APIError(400, "Field '\(name)' is given more than once.") }
                fields[name] = try Self.text(part)
            default:
                throw APIError(400, "Unknown field '\(part.name)'; expected: \(Self.jobFields.sorted().joined(separator: ", ")).")
            }
        }
        guard let content else { throw APIError(400, "The 'content' file is missing (curl -F content=@photo.jpg).") }
        guard !styleEntries.isEmpty else {
            throw APIError(400, "At least one 'style' file or 'style_id' is required (curl -F style=@painting.jpg).")
        }
        guard styleEntries.count <= config.maxStylesPerJob else {
            throw APIError(400, "At most \(config.maxStylesPerJob) styles per job (max_styles_per_job); got \(styleEntries.count).")
        }

        let model = fields["model"].flatMap { $0.isEmpty ? nil : $0 } ?? config.defaultModel
        let available = catalog.availableModels
        guard available.contains(model) else {
            throw APIError(400, "Unknown model '\(model)'; available: \(available.joined(separator: ", ")).")
        }
        var options = StylizeOptions()
        options.maxSize = config.maxSize
        if let a = fields["alpha"] {
            // Checked as a Double, so 1.0000000000000002 is over 1 even though it rounds to Float 1.
            guard Self.isJSONNumber(a), let v = Double(a), v.isFinite, v >= 0, v <= 1 else {
                throw APIError(400, "alpha must be a number from 0 to 1, got '\(a)'.")
            }
            options.alpha = Float(v)
        }
        if let w = fields["style_weights"] {
            let items = w.split(separator: ",", omittingEmptySubsequences: false)
            options.styleWeights = try items.map {
                let item = $0.trimmingCharacters(in: .whitespaces)
                guard Self.isWeight(item), let v = Float(item) else {
                    throw APIError(400, "style_weights must be comma-separated non-negative decimal numbers (like 0.7,0.3), got '\(w)'.")
                }
                return v
            }
        }
        if let p = fields["preserve_color"] {
            switch p.lowercased() {
            case "true", "1", "yes", "on": options.preserveColor = true
            case "false", "0", "no", "off", "": options.preserveColor = false
            default: throw APIError(400, "preserve_color must be true or false, got '\(p)'.")
            }
        }
        if let m = fields["max_size"] {
            guard Self.isJSONNumber(m, integer: true), let v = Int(m), v >= Stylizer.minimumSide, v <= config.maxSizeCap else {
                throw APIError(400, "max_size must be an integer from \(Stylizer.minimumSide) to \(config.maxSizeCap) (max_size_cap), got '\(m)'.")
            }
            options.maxSize = v
        }
        if let f = fields["format"] {
            switch f.lowercased() {
            case "png", "": options.format = .png
            case "jpeg", "jpg": options.format = .jpeg
            default: throw APIError(400, "format must be png or jpeg, got '\(f)'.")
            }
        }
        do {
            try options.validate(styleCount: styleEntries.count, masked: mask != nil)
        } catch let e as PipelineError {
            throw APIError(400, e.description + ".")
        }

        _ = try ImageCheck.probe(content.body, field: "content", maxPixels: config.maxPixels, maxSize: options.maxSize)
        if let mask { _ = try ImageCheck.probe(mask.body, field: "mask", maxPixels: config.maxPixels, maxSize: nil) }
        for (i, entry) in styleEntries.enumerated() {
            if let part = entry.part {
                _ = try ImageCheck.probe(part.body, field: "style \(i + 1)", maxPixels: config.maxPixels, maxSize: options.maxSize)
            }
        }

        // Idempotency digest over the parsed form, in order.
        var canonical = "POST /v1/jobs\n"
        for part in parts {
            let kind = part.filename == nil ? "field" : "file"
            canonical += "\(part.name)\u{0}\(kind)\u{0}\(try Self.digest(part))\n"
        }
        let digest = SHA256Digest.hex(Array(canonical.utf8))

        func input(_ name: String, _ part: MultipartPart) -> JobInput {
            switch part.body {
            case .file(let path, _): return .file(name, URL(fileURLWithPath: path))
            case .bytes(let b): return .bytes(name, b)
            case .empty: return .bytes(name, [])
            }
        }
        var inputs = [input("content", content)]
        if let mask { inputs.append(input("mask", mask)) }
        var styleIDs: [String] = []
        for entry in styleEntries {
            switch entry.source {
            case .upload(let blob): inputs.append(input(blob, entry.part!))
            case .registered(let id): if !styleIDs.contains(id) { styleIDs.append(id) }
            }
        }
        return (JobParameters(model: model, options: options, styles: styleEntries.map(\.source), mask: mask != nil), inputs, styleIDs, digest)
    }

    private func getJob(_ ctx: RequestContext) async throws -> HTTPResponse {
        let id = ctx.param("id")
        let owner = owner(ctx.head)
        var snap = try lookup(id, owner: owner)
        if let w = ctx.head.queryValue("wait") {
            guard Self.isJSONNumber(w), let seconds = Double(w), seconds.isFinite, seconds >= 0 else {
                throw APIError(400, "wait must be a number of seconds (0 to \(JSONValue.number(config.waitCapSeconds))), got '\(w)'.")
            }
            let timeout = min(seconds, config.waitCapSeconds)
            let deadline = DispatchTime.now().uptimeNanoseconds + UInt64(timeout * 1e9)
            // Only the end of the job ends the wait; intermediate changes are on the SSE stream.
            while !snap.record.status.isTerminal {
                let now = DispatchTime.now().uptimeNanoseconds
                guard now < deadline, !Task.isCancelled else { break }
                guard let changed = await jobs.waitForChange(id: id, after: snap.version, timeout: Double(deadline - now) / 1e9) else {
                    snap = try lookup(id, owner: owner)   // deleted or expired meanwhile: 404/410
                    break
                }
                snap = changed
            }
        }
        return .json(jobJSON(snap), headers: ["X-Job-Id": id])
    }

    private func deleteJob(_ ctx: RequestContext) throws -> HTTPResponse {
        let id = ctx.param("id")
        if case .found(let s) = jobs.lookup(id: id), s.record.owner != owner(ctx.head) { throw APIError(404, "No job \(id).") }
        switch jobs.cancel(id: id) {
        case .canceled(let snap): return .json(jobJSON(snap), status: 200, headers: ["X-Job-Id": id])
        case .cancelRequested(let snap): return .json(jobJSON(snap), status: 202, headers: ["X-Job-Id": id])
        case .deleted: return HTTPResponse(status: 204, headers: ["X-Job-Id": id])
        case .expired(let t):
            throw APIError(410, "Job \(id) expired at \(JobsJSON.format(t.expiredAt)); its files were removed (job_ttl_seconds).")
        case .notFound: throw APIError(404, "No job \(id).")
        }
    }

    private func getResult(_ ctx: RequestContext) throws -> HTTPResponse {
        let id = ctx.param("id")
        let snap = try lookup(id, owner: owner(ctx.head))
        switch snap.record.status {
        case .queued, .running:
            throw APIError(409, "Job \(id) is \(snap.record.status.rawValue); the result is not ready (poll GET /v1/jobs/\(id)?wait=30).",
                           title: "Result not ready", extra: [("job_status", .string(snap.record.status.rawValue))])
        case .failed:
            let why = snap.record.error.map { "\($0.title): \($0.detail ?? "")" } ?? "unknown error"
            throw APIError(409, "Job \(id) failed and has no result (\(why)).", title: "Job failed",
                           extra: [("job_status", "failed")])
        case .canceled:
            throw APIError(409, "Job \(id) was canceled and has no result.", title: "Job canceled", extra: [("job_status", "canceled")])
        case .succeeded:
            break
        }
        guard let (record, file) = jobs.result(id: id) else { throw APIError(404, "No job \(id).") }
        let sha = record.resultSHA256 ?? ((try? SHA256Digest.hex(file: file)) ?? "")
        let etag = "\"\(sha)\""
        let type = record.resultContentType ?? "application/octet-stream"
        let ext = type == "image/jpeg" ? "jpg" : "png"
        var headers: HTTPHeaders = ["ETag": etag, "Cache-Control": "private, no-cache", "X-Job-Id": id]
        if let inm = ctx.head.headers.values("If-None-Match").first, Self.etagMatches(inm, etag) {
            return HTTPResponse(status: 304, headers: headers)
        }
        headers["Content-Type"] = type
        headers["Content-Disposition"] = "inline; filename=\"\(id).\(ext)\""
        return HTTPResponse(status: 200, headers: headers, body: .file(path: file.path))
    }

    /// RFC 9110 weak comparison of an `If-None-Match` list against our strong ETag.
    static func etagMatches(_ header: String, _ etag: String) -> Bool {
        for item in header.split(separator: ",") {
            var t = item.trimmingCharacters(in: .whitespaces)
            if t == "*" { return true }
            if t.hasPrefix("W/") { t.removeFirst(2) }
            if t == etag { return true }
        }
        return false
    }

    /// `text/event-stream`: the job's current state first, then one event per change, ending
    /// after the terminal state. `event: status` when the status changed (and first), `event:
    /// progress` for progress or queue-position changes; `data` is always the whole job JSON;
    /// `id` is the job's change counter. A `: keep-alive` comment every 15 s keeps proxies open.
    private func getEvents(_ ctx: RequestContext) throws -> HTTPResponse {
        let id = ctx.param("id")
        _ = try lookup(id, owner: owner(ctx.head))
        let source = jobs.events(id: id)
        let (stream, continuation) = AsyncStream.makeStream(of: [UInt8].self, bufferingPolicy: .unbounded)
        let render: @Sendable (JobSnapshot) -> JSONValue = { [self] in jobJSON($0) }   // the pump ends with the job (or at shutdown)
        let pump = Task {
            var last: JobStatus?
            continuation.yield(Array("retry: 3000\n\n".utf8))
            for await snap in source {
                let kind = snap.record.status == last ? "progress" : "status"
                last = snap.record.status
                let frame = "id: \(snap.version)\nevent: \(kind)\ndata: \(render(snap).serialized())\n\n"
                continuation.yield(Array(frame.utf8))
            }
            continuation.finish()
        }
        let heartbeat = Task {
            while !Task.isCancelled {
                try? await Task.sleep(nanoseconds: 15_000_000_000)
                if Task.isCancelled { break }
                continuation.yield(Array(": keep-alive\n\n".utf8))
            }
        }
        continuation.onTermination = { _ in
            pump.cancel()
            heartbeat.cancel()
        }
        return HTTPResponse(status: 200, headers: ["Content-Type": "text/event-stream", "Cache-Control": "no-store",
                                                   "X-Accel-Buffering": "no", "X-Job-Id": id],
                            body: .stream(stream))
    }

    // MARK: Styles

    func styleJSON(_ s: StyleRecord) -> JSONValue {
        let codes = s.derived.keys.filter { $0.hasPrefix("code:") }.map { String($0.dropFirst(5)) }.sorted()
        return .object([
            ("id", .string(s.id)),
            ("name", .optional(s.name)),
            ("content_type", .string(s.contentType)),
            ("width", s.width.map(JSONValue.int) ?? .null),
            ("height", s.height.map(JSONValue.int) ?? .null),
            ("size", s.imageSize.map(JSONValue.int) ?? .null),
            ("sha256", .optional(s.imageSHA256)),
            ("created_at", .string(JobsJSON.format(s.createdAt))),
            ("url", .string("/v1/styles/\(s.id)")),
            ("cached_codes", .array(codes.map(JSONValue.string))),
        ])
    }

    private func createStyle(_ ctx: RequestContext) async throws -> HTTPResponse {
        if draining { throw APIError(503, "The server is shutting down.", headers: ["Retry-After": "5"]) }
        let request = ctx.request
        let owner = owner(ctx.head)
        return try await Self.offload { [self] in
            let parts = try parseForm(request, maxParts: 8)
            var consumed = false
            defer { if !consumed { MultipartParser.removeSpoolFiles(parts) } }
            var image: MultipartPart?
            var name: String?
            for part in parts {
                switch part.name {
                case "style":
                    guard image == nil else { throw APIError(400, "Send exactly one 'style' file.") }
                    image = part
                case "name":
                    guard name == nil else { throw APIError(400, "Field 'name' is given more than once.") }
                    name = try Self.text(part, limit: 800, maxCharacters: 200)
                default:
                    throw APIError(400, "Unknown field '\(part.name)'; expected: style, name.")
                }
            }
            guard let image else { throw APIError(400, "The 'style' file is missing (curl -F style=@painting.jpg).") }
            let info = try ImageCheck.probe(image.body, field: "style", maxPixels: config.maxPixels, maxSize: nil)
            guard info.width >= Stylizer.minimumSide, info.height >= Stylizer.minimumSide else {
                throw APIError(400, "style: \(info.width)x\(info.height) is too small; both sides must be at least \(Stylizer.minimumSide) pixels.")
            }
            let meta = StyleMetadata(name: name.flatMap { $0.isEmpty ? nil : $0 }, contentType: info.format.mimeType,
                                     width: info.width, height: info.height, owner: owner)
            let record: StyleRecord
            do {
                record = try registerStyle(image, parts: parts, metadata: meta, consumed: &consumed)
            } catch let e as StyleLibraryFull {
                throw APIError(409, "Cannot register another style: \(e.description); delete some with DELETE /v1/styles/{id}.")
            }
            logger.info("style registered", metadata: ["style": "\(record.id)", "size": "\(info.width)x\(info.height)"])
            return .json(styleJSON(record), status: 201, headers: ["Location": "/v1/styles/\(record.id)"])
        }
    }

    /// Stores the uploaded style image in the library (a spooled upload is moved, not copied).
    private func registerStyle(_ image: MultipartPart, parts: [MultipartPart], metadata meta: StyleMetadata,
                               consumed: inout Bool) throws -> StyleRecord {
        switch image.body {
        case .file(let path, _):
            let record = try styles.register(imageFile: URL(fileURLWithPath: path), metadata: meta)
            consumed = true
            MultipartParser.removeSpoolFiles(parts.filter { $0.name != image.name })
            return record
        default:
            return try styles.register(bytes: try image.body.readAll(), metadata: meta)
        }
    }

    // MARK: Models

    private func listModels() -> HTTPResponse {
        let models = catalog.models.map { m -> JSONValue in
            .object([("name", .string(m.name)), ("architecture", .string(m.architecture)), ("feature", .optional(m.feature)),
                     ("parameters", .int(m.parameterCount)), ("default", .bool(m.name == config.defaultModel)),
                     ("license", .optional(m.license)), ("source", .optional(m.source)), ("paper", .optional(m.paper))])
        }
        return .json(.object([("default", .string(config.defaultModel)), ("models", .array(models))]))
    }

    private func listStyles(_ ctx: RequestContext) -> HTTPResponse {
        let owner = owner(ctx.head)
        return .json(.object([("styles", .array(styles.list().filter { $0.owner == owner }.map(styleJSON)))]))
    }

    private func getStyle(_ ctx: RequestContext) throws -> HTTPResponse {
        guard let s = styles.get(ctx.param("id")), s.owner == owner(ctx.head) else { throw APIError(404, "No style \(ctx.param("id")).") }
        return .json(styleJSON(s))
    }

    private func deleteStyle(_ ctx: RequestContext) async throws -> HTTPResponse {
        let id = ctx.param("id")
        guard styles.get(id)?.owner == owner(ctx.head) else { throw APIError(404, "No style \(id).") }
        let existed = try await Self.offload { [styles] in try styles.delete(id) }
        guard existed else { throw APIError(404, "No style \(id).") }
        logger.info("style deleted", metadata: ["style": "\(id)"])
        return HTTPResponse(status: 204)
    }

    // MARK: Operations

    private func readyz() throws -> HTTPResponse {
        let modelsLoaded = catalog.availableModels.contains(config.defaultModel)
        let queueOK = !jobs.isFull
        let running = !draining
        let checks: JSONValue = .object([("models_loaded", .bool(modelsLoaded)), ("queue_not_full", .bool(queueOK)),
                                         ("not_shutting_down", .bool(running))])
        if modelsLoaded && queueOK && running {
            return .json(.object([("status", "ready"), ("checks", checks)]))
        }
        var why: [String] = []
        if !modelsLoaded { why.append("the default model '\(config.defaultModel)' is not available") }
        if !queueOK { why.append("the queue is full") }
        if !running { why.append("the server is shutting down") }
        throw APIError(503, "Not ready: \(why.joined(separator: "; ")).", extra: [("checks", checks)])
    }

    private func metricsText() -> HTTPResponse {
        let text = metrics.render(jobs: jobs.stats(), styles: styles.list().count)
        return HTTPResponse(status: 200, headers: ["Content-Type": "text/plain; version=0.0.4; charset=utf-8", "Cache-Control": "no-store"],
                            body: .bytes(Array(text.utf8)))
    }

    private func openAPIDocument() throws -> HTTPResponse {
        guard let doc = openAPI else { throw APIError(404, "openapi.yaml is not installed next to this binary.") }
        return HTTPResponse(status: 200, headers: ["Content-Type": "application/yaml; charset=utf-8"], body: .bytes(doc))
    }
}
