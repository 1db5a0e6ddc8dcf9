import Foundation
import StylistService
// The raw-socket client lives in TestSupport (the HTTP core's tests use it too); the service's
// tests get it with the test server.
@_exported import TestSupport

/// Paths of the repository (this file's location, or `STYLIST_REPO`) and of the shared data
/// (models, golden cases: `STYLIST_SHARED`, else `../shared` next to the repository).
public enum TestPaths {
    public static let repoRoot: URL = URL(fileURLWithPath: ProcessInfo.processInfo.environment["STYLIST_REPO"]
        ?? URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path)
    /// `STYLIST_SHARED`, else `../shared` next to the checkout (README.md).
    public static var shared: URL {
        if let env = ProcessInfo.processInfo.environment["STYLIST_SHARED"], !env.isEmpty { return URL(fileURLWithPath: env) }
        return repoRoot.appendingPathComponent("../shared").standardized
    }
    public static var models: String { shared.appendingPathComponent("models").path }
    public static var golden: String { shared.appendingPathComponent("golden").path }
    public static var images: String { shared.appendingPathComponent("images").path }
    /// A file's bytes.
    public static func bytes(_ path: String) throws -> [UInt8] { [UInt8](try Data(contentsOf: URL(fileURLWithPath: path))) }
}

/// The real server (`StylistServer`, real sockets) on an ephemeral loopback port with a
/// temporary data directory, for tests. Logs go to an in-memory buffer (`logLines`), printed
/// to stderr too when `STYLIST_TEST_LOG=1`.
public final class TestServer: @unchecked Sendable {
    public let dataDirectory: URL
    public private(set) var config: StylistConfig
    public private(set) var server: StylistServer
    private let logBuffer = LogBuffer()
    private var ownsDataDirectory: Bool
    private var hooks: StylistHooks
    /// Every server instance this test server ran (one more per `restart`), for checking what they answered.
    public private(set) var instances: [StylistServer] = []

    /// Starts a server. `configure` edits the configuration (defaults: 127.0.0.1, port 0, the
    /// shared models, quiet shutdown grace of 2 s) before it starts.
    public init(dataDirectory: URL? = nil, hooks: StylistHooks = StylistHooks(),
                _ configure: (inout StylistConfig) -> Void = { _ in }) throws {
        if let dataDirectory {
            self.dataDirectory = dataDirectory
            ownsDataDirectory = false
        } else {
            self.dataDirectory = URL(fileURLWithPath: NSTemporaryDirectory())
                .appendingPathComponent("stylist-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
            ownsDataDirectory = true
        }
        var c = StylistConfig()
        c.host = "127.0.0.1"
        c.port = 0
        c.dataDir = self.dataDirectory.path
        c.modelsDir = TestPaths.models
        c.shutdownGraceSeconds = 2
        c.logLevel = "info"
        configure(&c)
        config = c
        self.hooks = hooks
        server = StylistServer(config: c, hooks: hooks, logSink: logBuffer.sink)
        instances.append(server)
        try server.start()
    }


    deinit {
        server.shutdown(grace: 0)
        if ownsDataDirectory { try? FileManager.default.removeItem(at: dataDirectory) }
    }

    /// The bound port.
    public var port: Int { server.port }

    /// Log lines so far.
    public var logLines: [String] { logBuffer.lines }

    /// A new keep-alive connection to the server.
    public func client(timeout: Double = 30) throws -> HTTPClient {
        let c = try HTTPClient(port: port, timeout: timeout)
        if let key = config.apiKeys.first { c.defaultHeaders = [("Authorization", "Bearer \(key)")] }
        return c
    }

    /// Graceful shutdown (as on SIGTERM) with the given grace for a running job.
    public func stop(grace: Double? = nil) {
        server.shutdown(grace: grace)
    }

    /// Stops (if running) and starts a new server on the same data directory (a new port).
    public func restart(hooks: StylistHooks? = nil, _ configure: (inout StylistConfig) -> Void = { _ in }) throws {
        server.shutdown(grace: 0)
        if let hooks { self.hooks = hooks }
        configure(&config)
        server = StylistServer(config: config, hooks: self.hooks, logSink: logBuffer.sink)
        instances.append(server)
        try server.start()
    }

    /// Polls `condition` every 20 ms until it holds or `timeout` seconds pass.
    @discardableResult
    public static func eventually(timeout: Double = 60, _ condition: () throws -> Bool) rethrows -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if try condition() { return true }
            usleep(20_000)
        }
        return try condition()
    }
}

/// Log lines kept in memory (echoed to stderr when `STYLIST_TEST_LOG=1`).
final class LogBuffer: @unchecked Sendable {
    private let lock = NSLock()
    private var _lines: [String] = []
    private let echo = ProcessInfo.processInfo.environment["STYLIST_TEST_LOG"] == "1"

    var lines: [String] { lock.lock(); defer { lock.unlock() }; return _lines }

    var sink: @Sendable (String) -> Void {
        { [self] line in
            lock.lock()
            _lines.append(line)
            lock.unlock()
            if echo { FileHandle.standardError.write(Data(line.utf8)) }
        }
    }
}

/// A gate a test holds closed to keep a job running at a known point (see `StylistHooks.onLayer`).
public final class Gate: @unchecked Sendable {
    private let cond = NSCondition()
    private var open = false
    private var _arrivals: [String] = []

    public init() {}

    /// Blocks the caller (a worker thread) until `release()`; records the job id.
    public func pass(_ jobID: String) {
        cond.lock()
        _arrivals.append(jobID)
        cond.broadcast()
        while !open { cond.wait() }
        cond.unlock()
    }

    /// Opens the gate for good.
    public func release() {
        cond.lock()
        open = true
        cond.broadcast()
        cond.unlock()
    }

    /// Job ids that reached the gate, in order.
    public var arrivals: [String] { cond.lock(); defer { cond.unlock() }; return _arrivals }

    /// Waits until `jobID` (or any job when nil) reached the gate.
    @discardableResult
    public func waitForArrival(_ jobID: String? = nil, timeout: Double = 60) -> Bool {
        cond.lock()
        defer { cond.unlock() }
        let deadline = Date().addingTimeInterval(timeout)
        while !_arrivals.contains(where: { jobID == nil || $0 == jobID }) {
            if !cond.wait(until: deadline) { return false }
        }
        return true
    }

    /// Hooks that hold every job at its first layer (progress > 0) until `release()`.
    public var holdAtFirstLayer: StylistHooks {
        StylistHooks(onLayer: { [self] id, _ in
            cond.lock()
            let seen = _arrivals.contains(id)
            cond.unlock()
            if !seen { pass(id) }
        })
    }
}
