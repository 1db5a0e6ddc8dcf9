import Dispatch
import Foundation
import HTTPCore
import ImageCodecs
import Jobs
import Logging
import StylePipeline

/// The job endpoints: create (form decoding and checks), read and wait, cancel or delete, result, events.
extension API {
    func createJob(_ ctx: RequestContext) async throws -> HTTPResponse {
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
            ctx.log.job = id
            var headers: HTTPHeaders = ["Location": "/v1/jobs/\(id)"]
            if !result.created { headers["Idempotency-Replayed"] = "true" }
            return .json(jobJSON(result.snapshot), status: 202, headers: headers)
        }
    }

    /// Checks the form and every image header; returns the job's parameters, inputs, registered
    /// styles and the idempotency digest. Throws 400/413/415/422 `APIError`s.
    func validateJob(_ parts: [MultipartPart], owner: String?) throws -> (JobParameters, [JobInput], [String], String) {
        var content: MultipartPart?
        var styleEntries: [(source: StyleSource, part: MultipartPart?)] = []
        var fields: [String: String] = [:]
        var mask: MultipartPart?
        for part in parts {
            switch part.name {
            case "content":
                guard content == nil else { throw APIError(400, "Send exactly one 'content' file; got more than one.") }
                content = part
            case "style":
                styleEntries.append((.upload("style\(styleEntries.count)"), part))
            case "style_id":
                let id = try Self.text(part)
                guard let style = try styles.get(id), style.owner == owner else { throw APIError(400, "Unknown style_id '\(id)'; register it with POST /v1/styles.") }
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

    /// GET /v1/jobs/{id} without `wait`, on a backend that holds jobs in memory: nothing to wait
    /// for, so it is answered at once. Nil with `wait`, or when the lookup is a database query.
    func getJobAtOnce(_ ctx: RequestContext) throws -> HTTPResponse? {
        guard ctx.head.queryValue("wait") == nil, jobs.lookupIsInstant else { return nil }
        let id = ctx.param("id")
        let snap = try lookup(id, owner: owner(ctx.head))
        ctx.log.job = id
        return .json(encoded: jobBody(snap))
    }

    func getJob(_ ctx: RequestContext) async throws -> HTTPResponse {
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
        ctx.log.job = id
        return .json(encoded: jobBody(snap))
    }

    func deleteJob(_ ctx: RequestContext) throws -> HTTPResponse {
        let id = ctx.param("id")
        if case .found(let s) = try jobs.lookup(id: id), s.record.owner != owner(ctx.head) { throw APIError(404, "No job \(id).") }
        switch try jobs.cancel(id: id) {
        case .canceled(let snap): ctx.log.job = id; return .json(jobJSON(snap), status: 200)
        case .cancelRequested(let snap): ctx.log.job = id; return .json(jobJSON(snap), status: 202)
        case .deleted: ctx.log.job = id; return HTTPResponse(status: 204)
        case .expired(let t):
            throw APIError(410, "Job \(id) expired at \(JobsJSON.format(t.expiredAt)); its files were removed (job_ttl_seconds).")
        case .notFound: throw APIError(404, "No job \(id).")
        }
    }

    func getResult(_ ctx: RequestContext) throws -> HTTPResponse {
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
        guard let (record, file) = try jobs.result(id: id) else { throw APIError(404, "No job \(id).") }
        let sha = record.resultSHA256 ?? ((try? SHA256Digest.hex(file: file)) ?? "")
        let etag = "\"\(sha)\""
        let type = record.resultContentType ?? "application/octet-stream"
        let ext = type == "image/jpeg" ? "jpg" : "png"
        ctx.log.job = id
        var headers: HTTPHeaders = ["ETag": etag, "Cache-Control": "private, no-cache"]
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
    func getEvents(_ ctx: RequestContext) throws -> HTTPResponse {
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
        ctx.log.job = id
        return HTTPResponse(status: 200, headers: ["Content-Type": "text/event-stream", "Cache-Control": "no-store",
                                                   "X-Accel-Buffering": "no"],
                            body: .stream(stream))
    }
}
