#if canImport(Glibc)
import Glibc
#endif
import Foundation
import HTTPCore
import Jobs
import JobsPostgres
import Logging
import StylePipeline

/// The whole service: config -> model catalog (default model loaded), style library, durable
/// job system with workers, the v1 API and the HTTP server. `start()` then, on SIGTERM/SIGINT,
/// `shutdown()`.
///
/// Data directory layout: `jobs/<id>/` (record + inputs + result), `tombstones/`, `styles/`,
/// `tmp/` (upload spool, emptied at start; on the same file system so uploads are renamed, not
/// copied, into the job's directory), `.lock` (one server per data directory).
public final class StylistServer: @unchecked Sendable {
    public let config: StylistConfig
    public let logger: Logger
    public let metrics = Metrics()
    let hooks: StylistHooks
    let logSink: (@Sendable (String) -> Void)?

    public private(set) var catalog: ModelCatalog!
    public private(set) var jobs: (any JobQueue)!
    public private(set) var styles: (any StyleStore)!
    var api: API!
    var http: HTTPServer!
    private var lockFD: Int32 = -1
    private let stateLock = NSLock()
    private let lifecycle = NSLock()   // start and shutdown never overlap (a signal during start waits for it)
    private var stopped = false

    /// A server for `config`; `hooks` are for tests; `logSink` receives log lines (default stderr).
    public init(config: StylistConfig, hooks: StylistHooks = StylistHooks(), logSink: (@Sendable (String) -> Void)? = nil) {
        self.config = config
        self.hooks = hooks
        self.logSink = logSink
        self.logger = LogSetup.logger("stylist", config: config, sink: logSink)
    }

    /// The port actually listened on (differs from `config.port` when that is 0).
    public var port: Int { http?.boundPort ?? 0 }

    /// The absolute data directory.
    public var dataDirectory: URL { URL(fileURLWithPath: config.dataDir).standardizedFileURL }

    /// Every (method, path template) the API serves (HEAD included where GET is).
    public var routes: [(method: String, template: String)] { api?.routeTable ?? [] }

    /// Opens everything and starts listening; throws a one-line error (`ConfigError`,
    /// `HTTPServerError`, storage errors) when it cannot.
    public func start() throws {
        lifecycle.lock()
        defer { lifecycle.unlock() }
        let data = dataDirectory
        let tmp = data.appendingPathComponent("tmp")
        do {
            try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
        } catch {
            throw ConfigError("cannot create data directory \(data.path): \(error.localizedDescription)")
        }
        try acquireLock(data)
        for name in (try? FileManager.default.contentsOfDirectory(atPath: tmp.path)) ?? [] {
            try? FileManager.default.removeItem(at: tmp.appendingPathComponent(name))
        }

        let modelDirectories: [String]
        do {
            modelDirectories = try ModelCatalog.searchPath(configured: config.modelsDir)
        } catch {
            releaseLock()
            throw ConfigError("models_dir: \(error)")
        }
        let catalog = ModelCatalog(directories: modelDirectories)
        do {
            // An api replica runs no jobs: it checks model names from their headers only.
            if config.role != "api" { _ = try catalog.network(named: config.defaultModel) }
        } catch {
            releaseLock()
            throw ConfigError("default_model: \(error)")
        }
        self.catalog = catalog

        let styles: any StyleStore
        let jobs: any JobQueue
        do {
            (jobs, styles) = try openStores(data: data, catalog: catalog)
        } catch {
            releaseLock()
            throw error
        }
        self.styles = styles
        self.jobs = jobs

        let httpLogger = LogSetup.logger("stylist.http", config: config, sink: logSink)
        let api = API(config: config, jobs: jobs, styles: styles, catalog: catalog, metrics: metrics, logger: httpLogger,
                      spoolDirectory: tmp.path, openAPI: OpenAPIDocument.load())
        self.api = api
        var hc = HTTPServerConfiguration()
        hc.host = config.host
        hc.port = config.port
        hc.maxHeaderBytes = config.http.maxHeaderBytes
        hc.maxHeaderCount = config.http.maxHeaderCount
        hc.maxBodyBytes = config.http.maxBodyBytes
        hc.bodyMemoryThreshold = config.http.bodyMemoryThreshold
        hc.spoolDirectory = tmp.path
        hc.maxConnections = config.http.maxConnections
        hc.maxConnectionsPerAddress = config.http.maxConnectionsPerAddress
        hc.minBodyBytesPerSecond = config.http.minBodyBytesPerSecond
        hc.headerTimeout = config.http.headerTimeoutSeconds
        hc.bodyTimeout = config.http.bodyTimeoutSeconds
        hc.idleTimeout = config.http.idleTimeoutSeconds
        if let threads = config.http.eventLoopThreads { hc.eventLoopThreads = threads }
        if let cert = config.tls.cert, let key = config.tls.key {
            hc.tls = TLSConfiguration(certificatePath: cert, privateKeyPath: key)
        }
        let http = HTTPServer(configuration: hc, responder: api, logger: httpLogger)
        do {
            try http.start()
        } catch {
            jobs.shutdown(grace: 0)
            releaseLock()
            throw error
        }
        self.http = http
        if api.openAPI == nil { logger.warning("openapi.yaml not found; GET /openapi.yaml answers 404") }
        logger.info("stylist serving", metadata: [
            "url": "\(config.tls.cert == nil ? "http" : "https")://\(config.host):\(http.boundPort)",
            "data_dir": "\(data.path)", "models_dirs": "\(modelDirectories.joined(separator: ","))", "default_model": "\(config.defaultModel)",
            "models": "\(catalog.availableModels.joined(separator: ","))", "workers": "\(config.workers)",
            "queue_size": "\(config.queueSize)", "auth": "\(config.apiKeys.isEmpty ? "off" : "on")",
        ])
    }

    /// The job queue and style library: in `data` by default, in PostgreSQL with `database_url`
    /// (then `data` holds only the upload spool and a cache of blobs). An `api` replica gets no
    /// executor, so it runs no jobs and never loads a network.
    private func openStores(data: URL, catalog: ModelCatalog) throws -> (any JobQueue, any StyleStore) {
        let jobsLogger = LogSetup.logger("stylist.jobs", config: config, sink: logSink)
        let sweepInterval = min(60, max(1, config.jobTTLSeconds / 10))
        var jc = JobSystem.Configuration()
        jc.queueCapacity = config.queueSize
        jc.workers = config.workers
        jc.ttl = config.jobTTLSeconds
        jc.maxAttempts = config.maxAttempts
        jc.sweepInterval = sweepInterval
        jc.logger = jobsLogger
        guard let url = config.databaseURL else {
            let styles = try StyleLibrary(directory: data.appendingPathComponent("styles"), maxCount: config.maxStyles,
                                          maxBytes: config.maxStyleBytes)
            let executor = StyleJobExecutor(catalog: catalog, styles: styles, metrics: metrics, maxPixels: config.maxPixels,
                                            hooks: hooks, logger: jobsLogger)
            return (try JobSystem.open(directory: data, executor: executor, configuration: jc), styles)
        }
        var pc = PostgresJobQueue.Configuration()
        pc.jobs = jc
        pc.workers = config.role == "api" ? 0 : config.workers
        pc.leaseSeconds = config.jobLeaseSeconds
        let cache = data.appendingPathComponent("cache")
        let database = try JobDatabase(url: url, poolSize: max(config.databasePoolSize, config.workers + 3),
                                       logger: LogSetup.logger("stylist.postgres", config: config, sink: logSink))
        let styles = try PostgresStyleStore(database: database, cacheDirectory: cache, maxCount: config.maxStyles,
                                            maxBytes: config.maxStyleBytes)
        let executor = config.role == "api" ? nil
            : StyleJobExecutor(catalog: catalog, styles: styles, metrics: metrics, maxPixels: config.maxPixels,
                               hooks: hooks, logger: jobsLogger)
        return (try PostgresJobQueue(database: database, cacheDirectory: cache, executor: executor, configuration: pc), styles)
    }

    /// Graceful shutdown (SIGTERM/SIGINT): readiness fails and new jobs get 503, the listening
    /// socket closes, the running job gets `shutdown_grace_seconds` to finish (else it is
    /// persisted as queued and runs again on the next start), long polls and event streams are
    /// answered, connections are closed. Blocks; call it from a plain thread. Idempotent.
    public func shutdown(grace: Double? = nil) {
        stateLock.lock()
        if stopped { stateLock.unlock(); return }
        stopped = true
        stateLock.unlock()
        lifecycle.lock()
        defer { lifecycle.unlock() }
        let grace = grace ?? config.shutdownGraceSeconds
        logger.info("shutting down", metadata: ["grace_seconds": "\(grace)", "queued": "\(jobs?.stats().queued ?? 0)",
                                                "running": "\(jobs?.stats().running ?? 0)"])
        api?.draining = true
        http?.stopAccepting()
        jobs?.shutdown(grace: grace)
        http?.shutdown(grace: 5)
        releaseLock()
        logger.info("stopped")
    }

    private func acquireLock(_ data: URL) throws {
        let path = data.appendingPathComponent(".lock").path
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw ConfigError("cannot open \(path): \(String(cString: strerror(errno)))") }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            close(fd)
            throw ConfigError("data directory \(data.path) is in use by another stylist server")
        }
        lockFD = fd
    }

    private func releaseLock() {
        if lockFD >= 0 {
            flock(lockFD, LOCK_UN)
            close(lockFD)
            lockFD = -1
        }
    }
}

/// `GET /openapi.yaml`. The canonical file is `openapi.yaml` at the repository root; the build
/// ships a byte-identical copy in this target's resources (`Resources/openapi.yaml`, checked
/// by `OpenAPITests.testServedCopyIsIdenticalToTheRootFile`). At run time the copy is looked up
/// in the resource bundle next to the executable (or the test bundle), then `./openapi.yaml`
/// (a checkout), without `Bundle.module`, whose accessor aborts the process when the bundle is
/// missing.
enum OpenAPIDocument {
    static let bundleName = "Stylist_StylistService.resources"

    static func candidates() -> [String] {
        var dirs: [URL] = [Bundle.main.bundleURL]
        if let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            dirs.append(URL(fileURLWithPath: exe).deletingLastPathComponent())
        }
        dirs.append(URL(fileURLWithPath: CommandLine.arguments.first ?? ".").deletingLastPathComponent())
        var out: [String] = []
        for d in dirs {
            out.append(d.appendingPathComponent(bundleName).appendingPathComponent("Resources/openapi.yaml").path)
            out.append(d.appendingPathComponent(bundleName).appendingPathComponent("openapi.yaml").path)
        }
        out.append("openapi.yaml")
        return out
    }

    static func load() -> [UInt8]? {
        for path in candidates() {
            if let data = FileManager.default.contents(atPath: path) { return [UInt8](data) }
        }
        return nil
    }
}
