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

    /// The queue drained: the engine's idle buffers go back to the system, so an idle server does not
    /// keep the last job's activations (up to 384 MB of reuse cache) resident.
    func becameIdle() { EngineMemory.releaseIdle() }

    func execute(_ job: JobRecord, blobs: BlobStore, progress: JobProgress) throws -> JobResult {
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
        let ctx = RunContext()
        let hook = hooks.onLayer
        let id = job.id
        ctx.isCanceled = { progress.isCanceled }
        ctx.onProgress = { fraction in
            progress.report(fraction)
            hook?(id, fraction)
        }

        func input(_ name: String, _ what: String) throws -> PlanarImage {
            guard let bytes = try blobs.get(job: job.id, name: name) else {
                throw JobFailure(status: 500, title: "Missing input", detail: "the job's \(what) is missing from the blob store")
            }
            return try Stylizer.decode(bytes, input: what, maxPixels: maxPixels)
        }

        let content = try input("content", "content")
        try progress.checkCancellation()
        var inputs: [StyleInput] = []
        for (i, source) in params.styles.enumerated() {
            switch source {
            case .upload(let blob):
                inputs.append(.image(try input(blob, "style \(i + 1)")))
            case .registered(let styleID):
                inputs.append(try registeredStyle(styleID, index: i, params: params, stylizer: stylizer, ctx: ctx))
            }
            try progress.checkCancellation()
        }
        var mask: RegionMask?
        if params.mask {
            guard let bytes = try blobs.get(job: job.id, name: "mask") else {
                throw JobFailure(status: 500, title: "Missing input", detail: "the job's mask is missing from the blob store")
            }
            mask = try Stylizer.decodeMask(bytes, maxPixels: maxPixels)
        }
        let result = try stylizer.stylize(content: content, styles: inputs, mask: mask, options: params.options, ctx: ctx)
        metrics.recordInference(model: params.model, seconds: result.inferenceSeconds, flops: result.flops)
        try progress.checkCancellation()
        let bytes = try Stylizer.encode(result.image, options: params.options)
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
            return try Stylizer.decode(bytes, input: "style \(index + 1) (\(styleID))", maxPixels: maxPixels)
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
