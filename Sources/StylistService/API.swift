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
    let jobs: any JobQueue
    let styles: any StyleStore
    let catalog: ModelCatalog
    let metrics: Metrics
    let logger: Logger
    let spoolDirectory: String
    let openAPI: [UInt8]?
    /// SHA-256 (hex) of each configured API key, computed once: requests compare digests.
    let keyDigests: [[UInt8]]
    /// Encoded job answers by job and version (JobBodyCache.swift).
    let jobBodies = JobBodyCache()
    private let stateLock = NSLock()
    private var _draining = false
    private var router = Router()
    static let ioQueue = DispatchQueue(label: "stylist.io", qos: .userInitiated, attributes: .concurrent)

    static let openRoutes: Set<String> = Set(["/healthz", "/readyz"]).union(WebPage.paths)
    static let jobFields: Set<String> = ["content", "style", "style_id", "model", "alpha", "style_weights",
                                         "preserve_color", "max_size", "format", "mask"]

    init(config: StylistConfig, jobs: any JobQueue, styles: any StyleStore, catalog: ModelCatalog, metrics: Metrics,
         logger: Logger, spoolDirectory: String, openAPI: [UInt8]?) {
        self.config = config
        self.jobs = jobs
        self.styles = styles
        self.catalog = catalog
        self.metrics = metrics
        self.logger = logger
        self.spoolDirectory = spoolDirectory
        self.openAPI = openAPI
        keyDigests = config.apiKeys.map { Array(SHA256Digest.hex(Array($0.utf8)).utf8) }
        router = makeRouter()
    }

    /// True once shutdown began: readiness fails and new jobs and styles get 503.
    var draining: Bool {
        get { stateLock.lock(); defer { stateLock.unlock() }; return _draining }
        set { stateLock.lock(); _draining = newValue; stateLock.unlock() }
    }

    /// The (method, template) pairs served, for the openapi.yaml consistency test.
    var routeTable: [(method: String, template: String)] { router.table }

    func makeRouter() -> Router {
        var r = Router()
        r.add("POST", "/v1/jobs") { [unowned self] in try await createJob($0) }
        r.add("GET", "/v1/jobs/{id}", immediate: { [unowned self] in try getJobAtOnce($0) }) { [unowned self] in try await getJob($0) }
        r.add("DELETE", "/v1/jobs/{id}") { [unowned self] in try deleteJob($0) }
        r.add("GET", "/v1/jobs/{id}/result") { [unowned self] in try getResult($0) }
        r.add("GET", "/v1/jobs/{id}/events") { [unowned self] in try getEvents($0) }
        r.add("POST", "/v1/styles") { [unowned self] in try await createStyle($0) }
        r.add("GET", "/v1/styles") { [unowned self] in try listStyles($0) }
        r.add("GET", "/v1/styles/{id}") { [unowned self] in try getStyle($0) }
        r.add("DELETE", "/v1/styles/{id}") { [unowned self] in try await deleteStyle($0) }
        r.add("GET", "/v1/models") { [unowned self] _ in listModels() }
        let healthy = HTTPResponse.json(.object([("status", "ok")]))   // encoded once: probes ask often
        r.add("GET", "/healthz", immediate: { _ in healthy }) { _ in healthy }
        r.add("GET", "/readyz") { [unowned self] _ in try readyz() }
        r.add("GET", "/metrics") { [unowned self] _ in metricsText() }
        r.add("GET", "/openapi.yaml") { [unowned self] _ in try openAPIDocument() }
        addWebPageRoutes(&r)   // WebPage.swift: GET /, /app.js, /app.css, /v1/styles/{id}/image
        if config.role == "worker" { r.keep(Self.workerRoutes) }
        return r
    }

    /// What a worker-only replica serves: it runs jobs and answers its orchestrator.
    static let workerRoutes: Set<String> = ["/healthz", "/readyz", "/metrics"]

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
            case .found(_, _, let template, _):
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
        var logFields: RequestLogFields?
        let response: HTTPResponse
        switch router.match(method: head.method, path: head.path) {
        case .found(let handler, let params, let template, _):
            route = template
            let context = RequestContext(request: request, params: params, route: template)
            logFields = context.log
            do {
                response = try await handler(context)
            } catch let e as APIError {
                response = e.response
            } catch let e as ErrnoCarrying {
                logger.error("storage failed", metadata: ["path": "\(head.path)", "error": "\(e)"])
                response = APIError(storage: e).response
            } catch let e as JobStoreUnavailable {
                logger.error("job store unavailable", metadata: ["path": "\(head.path)", "error": "\(e)"])
                response = APIError(503, "The job database cannot be reached; retry shortly.", headers: ["Retry-After": "2"]).response
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
        finish(head, route: route, response: response, start: start, remote: request.remoteAddress, job: logFields?.job)
        return response
    }

    /// Routes with an immediate handler (the health check, a job poll without `wait`) are answered
    /// on the connection's queue. A failure other than an `APIError` gives nil: `respond` runs the
    /// route again and logs and maps it.
    func respondImmediately(to request: HTTPRequest) -> HTTPResponse? {
        let start = DispatchTime.now().uptimeNanoseconds
        let head = request.head
        guard case .found(_, let params, let template, let immediate?) = router.match(method: head.method, path: head.path) else {
            return nil
        }
        let context = RequestContext(request: request, params: params, route: template)
        let response: HTTPResponse
        do {
            guard let answer = try immediate(context) else { return nil }
            response = answer
        } catch let e as APIError {
            response = e.response
        } catch {
            return nil
        }
        finish(head, route: template, response: response, start: start, remote: request.remoteAddress, job: context.log.job)
        return response
    }

    /// Records the request's metrics and writes its log line; `job` is the job a handler noted in `RequestContext.log`.
    func finish(_ head: HTTPRequestHead, route: String, response: HTTPResponse, start: UInt64, remote: String?, job: String? = nil) {
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        metrics.recordRequest(route: route, method: Metrics.methodLabel(head.method), status: response.status, seconds: seconds)
        var meta: Logger.Metadata = [
            "method": "\(head.method)", "path": "\(head.path)", "route": "\(route)",
            "status": "\(response.status)", "ms": "\(LogTimestamp.milliseconds(seconds))",
        ]
        if let remote { meta["remote"] = "\(remote)" }
        if let job { meta["job"] = "\(job)" }
        logger.info("request", metadata: meta)
    }

    // MARK: Auth

    func authenticate(_ head: HTTPRequestHead) -> APIError? {
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
            for key in keyDigests where Self.constantTimeEqual(given, key) { ok = true }
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
    func clientScope(_ head: HTTPRequestHead) -> String {
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

    func parseForm(_ request: HTTPRequest, maxParts: Int) throws -> [MultipartPart] {
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
    static func text(_ part: MultipartPart, limit: Int = 1024, maxCharacters: Int? = nil) throws -> String {
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

    static func digest(_ part: MultipartPart) throws -> String {
        switch part.body {
        case .empty: return SHA256Digest.hex([])
        case .bytes(let b): return SHA256Digest.hex(b)
        case .file(let path, _): return try SHA256Digest.hex(file: URL(fileURLWithPath: path))
        }
    }

    /// The job, if this client may see it: another API key's job is 404, as if it did not exist.
    func lookup(_ id: String, owner: String?) throws -> JobSnapshot {
        switch try jobs.lookup(id: id) {
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
            ("attempts", .int(r.attempts)),
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

    // MARK: Models

    func listModels() -> HTTPResponse {
        let models = catalog.models.map { m -> JSONValue in
            .object([("name", .string(m.name)), ("architecture", .string(m.architecture)), ("feature", .optional(m.feature)),
                     ("parameters", .int(m.parameterCount)), ("default", .bool(m.name == config.defaultModel)),
                     ("license", .optional(m.license)), ("source", .optional(m.source)), ("paper", .optional(m.paper))])
        }
        return .json(.object([("default", .string(config.defaultModel)), ("models", .array(models))]))
    }

    func listStyles(_ ctx: RequestContext) throws -> HTTPResponse {
        let owner = owner(ctx.head)
        return .json(.object([("styles", .array(try styles.list().filter { $0.owner == owner }.map(styleJSON)))]))
    }

    func getStyle(_ ctx: RequestContext) throws -> HTTPResponse {
        guard let s = try styles.get(ctx.param("id")), s.owner == owner(ctx.head) else { throw APIError(404, "No style \(ctx.param("id")).") }
        return .json(styleJSON(s))
    }

    func deleteStyle(_ ctx: RequestContext) async throws -> HTTPResponse {
        let id = ctx.param("id")
        guard try styles.get(id)?.owner == owner(ctx.head) else { throw APIError(404, "No style \(id).") }
        let existed = try await Self.offload { [styles] in try styles.delete(id) }
        guard existed else { throw APIError(404, "No style \(id).") }
        logger.info("style deleted", metadata: ["style": "\(id)"])
        return HTTPResponse(status: 204)
    }

    // MARK: Operations

    func readyz() throws -> HTTPResponse {
        let modelsLoaded = config.role == "api" || catalog.availableModels.contains(config.defaultModel)
        let storeOK = jobs.isAvailable
        let queueOK = !storeOK || !jobs.isFull
        let running = !draining
        let checks: JSONValue = .object([("models_loaded", .bool(modelsLoaded)), ("queue_not_full", .bool(queueOK)),
                                         ("not_shutting_down", .bool(running)), ("job_store_reachable", .bool(storeOK))])
        if modelsLoaded && queueOK && running && storeOK {
            return .json(.object([("status", "ready"), ("checks", checks)]))
        }
        var why: [String] = []
        if !modelsLoaded { why.append("the default model '\(config.defaultModel)' is not available") }
        if !queueOK { why.append("the queue is full") }
        if !running { why.append("the server is shutting down") }
        if !storeOK { why.append("the job database cannot be reached") }
        throw APIError(503, "Not ready: \(why.joined(separator: "; ")).", extra: [("checks", checks)])
    }

    func metricsText() -> HTTPResponse {
        let text = metrics.render(jobs: jobs.stats(), styles: (try? styles.count()) ?? 0)
        return HTTPResponse(status: 200, headers: ["Content-Type": "text/plain; version=0.0.4; charset=utf-8", "Cache-Control": "no-store"],
                            body: .bytes(Array(text.utf8)))
    }

    func openAPIDocument() throws -> HTTPResponse {
        guard let doc = openAPI else { throw APIError(404, "openapi.yaml is not installed next to this binary.") }
        return HTTPResponse(status: 200, headers: ["Content-Type": "application/yaml; charset=utf-8"], body: .bytes(doc))
    }
}
