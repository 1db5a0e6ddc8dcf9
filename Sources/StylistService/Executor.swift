import Engine
import Foundation
import ImageCodecs
import Jobs
import Logging
import Models
import StylePipeline

/// Hooks for tests (never set in production): called on the worker thread.
public struct StylistHooks: Sendable {
    /// After each engine layer with the job's progress, before the next cancellation check.
    /// A test can block here to hold a job `running` at a known point.
    public var onLayer: (@Sendable (_ jobID: String, _ progress: Double) -> Void)?
    /// When a job starts executing, before any input is read.
    public var onStart: (@Sendable (_ jobID: String) -> Void)?
    public init(onLayer: (@Sendable (String, Double) -> Void)? = nil, onStart: (@Sendable (String) -> Void)? = nil) {
        self.onLayer = onLayer
        self.onStart = onStart
    }
}

/// A registered style's encoder output, cached in the style library as JSON. Floats are stored
/// as their IEEE-754 bit patterns so a cached code is bit-identical to a fresh one (and a job
/// with `style_id` gives exactly the pixels of the same job with the image uploaded).
struct CachedStyleCode: Codable {
    var format = 1
    var model: String
    var maxSize: Int
    var architecture: String
    var vectors: [String: [UInt32]]

    init(model: String, maxSize: Int, code: StyleCode) {
        self.model = model
        self.maxSize = maxSize
        architecture = code.architecture
        vectors = code.vectors.mapValues { $0.map(\.bitPattern) }
    }

    var code: StyleCode { StyleCode(architecture: architecture, vectors: vectors.mapValues { $0.map(Float.init(bitPattern:)) }) }

    /// The library key: one code per model and `max_size` (the style is resized like the job's).
    static func key(model: String, maxSize: Int) -> String { "code:\(model)@\(maxSize)" }
}

/// Runs one stylization job on a Jobs worker thread: decodes the inputs, runs the `Stylizer`
/// with progress per layer and cancellation between layers, encodes PNG (or JPEG).
final class StyleJobExecutor: JobExecutor, @unchecked Sendable {
    let catalog: ModelCatalog
    let styles: any StyleStore
    let metrics: Metrics
    let maxPixels: Int
    let hooks: StylistHooks
    let logger: Logger

    init(catalog: ModelCatalog, styles: any StyleStore, metrics: Metrics, maxPixels: Int, hooks: StylistHooks, logger: Logger) {
        self.catalog = catalog
        self.styles = styles
        self.metrics = metrics
        self.maxPixels = maxPixels
        self.hooks = hooks
        self.logger = logger
    }

    /// Seconds without a job before the engine's idle buffers go back to the system.
    static let idleReleaseDelay: TimeInterval = 10
    /// The shortest time between two progress reports of a job: 20 a second at most.
    static let progressInterval: TimeInterval = 0.05
    private let idleRelease = EngineIdleRelease(delay: StyleJobExecutor.idleReleaseDelay)

    /// The queue drained: unless another job comes within `idleReleaseDelay`, the engine's idle
    /// buffers go back to the system, so an idle server does not keep the last job's activations
    /// (up to 384 MB of reuse cache) resident.
    func becameIdle() { idleRelease.becameIdle() }

    func execute(_ job: JobRecord, blobs: BlobStore, progress: JobProgress) throws -> JobResult {
        idleRelease.jobStarted()
        defer { idleRelease.jobEnded() }
        hooks.onStart?(job.id)
        do {
            return try run(job, blobs: blobs, progress: progress)
        } catch let e as PipelineError {
            if e == .canceled { throw JobCanceled() }
            let (status, title) = e.problem
            throw JobFailure(status: status, title: title, detail: e.description)
        } catch is RunCanceled {
            throw JobCanceled()
        }
    }

    private func run(_ job: JobRecord, blobs: BlobStore, progress: JobProgress) throws -> JobResult {
        let params = try JobParameters(record: job.parameters)
        let network = try catalog.network(named: params.model)
        let stylizer = Stylizer(network: network)
        EngineMemory.beginRun()
        let ctx = RunContext()
        let hook = hooks.onLayer
        let id = job.id
        ctx.isCanceled = { progress.isCanceled }
        // Progress reaches the job system from a serial queue: persisting it (a record save with
        // fsync, a few times a second) must not stall the engine between two layers. Reports are
        // spaced at least `progressInterval` apart (the first, and one reaching 1, always go): each one
        // wakes the queue's thread and every watcher of the job, and one wake per layer takes a
        // core from the engine's threads. A test hook sees every layer, after any report made.
        let reports = DispatchQueue(label: "stylist.job-progress")
        let interval = UInt64(Self.progressInterval * 1e9)
        var lastReport: UInt64?
        ctx.onProgress = { fraction in
            let now = DispatchTime.now().uptimeNanoseconds
            if fraction >= 1 || lastReport.map({ now - $0 >= interval }) ?? true {
                lastReport = now
                reports.async { progress.report(fraction) }
            }
            if let hook {
                reports.sync {}
                hook(id, fraction)
            }
        }

        var stages = StageTimings()
        func read(_ name: String, _ what: String) throws -> [UInt8] {
            guard let bytes = try stages.time("read", { try blobs.get(job: job.id, name: name) }) else {
                throw JobFailure(status: 500, title: "Missing input", detail: "the job's \(what) is missing from the blob store")
            }
            return bytes
        }

        // Every uploaded image is read first, then all are decoded side by side (one per core), each
        // once, straight to the job's size (a large JPEG at a reduced IDCT scale).
        var uploads = [(bytes: try read("content", "content"), input: "content")]
        for (i, source) in params.styles.enumerated() {
            if case .upload(let blob) = source { uploads.append((try read(blob, "style \(i + 1)"), "style \(i + 1)")) }
        }
        let images = try stages.time("decode") {
            try Stylizer.decodeAll(uploads, maxPixels: maxPixels, fittingTo: params.options.maxSize)
        }
        var decoded = images.makeIterator()
        let content = decoded.next()!
        try progress.checkCancellation()
        var inputs: [StyleInput] = []
        for (i, source) in params.styles.enumerated() {
            switch source {
            case .upload:
                inputs.append(.image(decoded.next()!))
            case .registered(let styleID):
                inputs.append(try stages.time("registered_style") {
                    try registeredStyle(styleID, index: i, params: params, stylizer: stylizer, ctx: ctx)
                })
            }
            try progress.checkCancellation()
        }
        var mask: RegionMask?
        if params.mask {
            let bytes = try read("mask", "mask")
            mask = try stages.time("decode") { try Stylizer.decodeMask(bytes, maxPixels: maxPixels) }
        }
        let result = try stylizer.stylize(content: content, styles: inputs, mask: mask, options: params.options, ctx: ctx)
        stages.add(result.stages)
        metrics.recordInference(model: params.model, seconds: result.inferenceSeconds, flops: result.flops)
        try progress.checkCancellation()
        let bytes = try stages.time("encode") { try Stylizer.encode(result, options: params.options) }
        var metadata: Logger.Metadata = ["job": "\(job.id)", "model": "\(params.model)", "max_size": "\(params.options.maxSize)",
                                         "format": "\(params.options.format.rawValue)", "bytes": "\(bytes.count)",
                                         "total_ms": "\(String(format: "%.1f", stages.total * 1000))"]
        for (key, value) in stages.milliseconds { metadata[key] = "\(value)" }
        // The job system's own share (record saves, storing the result) is in its "job finished" line.
        logger.info("job stages", metadata: metadata)
        return JobResult(bytes: bytes, contentType: params.options.format.mimeType)
    }

    /// A registered style as the job needs it: its image when colour preservation needs the
    /// pixels, else its cached code for (model, max_size), encoding and caching it on first use.
    private func registeredStyle(_ styleID: String, index: Int, params: JobParameters, stylizer: Stylizer,
                                 ctx: RunContext) throws -> StyleInput {
        func image() throws -> PlanarImage {
            guard let bytes = try styles.imageBytes(styleID) else {
                throw JobFailure(status: 404, title: "Style not found", detail: "registered style \(styleID) was deleted before the job ran")
            }
            // At the job's size, as an uploaded style is decoded: a registered style gives exactly
            // the pixels of the same image uploaded.
            return try Stylizer.decode(bytes, input: "style \(index + 1) (\(styleID))", maxPixels: maxPixels,
                                       fittingTo: params.options.maxSize)
        }
        if params.options.preserveColor { return .image(try image()) }
        let key = CachedStyleCode.key(model: params.model, maxSize: params.options.maxSize)
        if let data = styles.derived(styleID, key: key),
           let cached = try? JSONDecoder().decode(CachedStyleCode.self, from: Data(data)),
           cached.architecture == stylizer.network.architecture {
            metrics.recordStyleCode(hit: true)
            return .code(cached.code)
        }
        metrics.recordStyleCode(hit: false)
        let code = try stylizer.encodeStyle(try image(), maxSize: params.options.maxSize, ctx: RunContext())
        let cached = CachedStyleCode(model: params.model, maxSize: params.options.maxSize, code: code)
        do {
            try styles.putDerived(styleID, key: key, bytes: Array(try JSONEncoder().encode(cached)))
        } catch {
            logger.warning("could not cache a style code", metadata: ["style": "\(styleID)", "error": "\(error)"])
        }
        return .code(code)
    }
}
