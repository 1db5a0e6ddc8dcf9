import Foundation
import HTTPCore

/// The HTTP server's defaults: the one home of the HTTP limits.
private let httpDefaults = HTTPServerConfiguration()

/// Every setting of `stylist serve`, with the product defaults.
///
/// Precedence, lowest first: these defaults, then the JSON config file (`config/stylist.json`,
/// or `--config FILE`, or `STYLIST_CONFIG`), then `STYLIST_*` environment variables, then
/// command-line flags. The JSON keys are the snake_case names below; nested sections are `http`
/// and `tls`. An unknown key, a value of the wrong type or out of range is a startup error that
/// names the key and where it came from.
///
/// The environment variable of a key is `STYLIST_` + the key upper-cased with `.` -> `_`
/// (`http.max_body_bytes` -> `STYLIST_HTTP_MAX_BODY_BYTES`). Two exceptions: `models_dir` is
/// `STYLIST_MODELS` (the name README.md documents; like every variable it overrides the file), and
/// `api_keys` is a comma-separated list.
public struct StylistConfig: Codable, Equatable, Sendable {
    /// Address to bind (`0.0.0.0` all IPv4, `::` all IPv4+IPv6, `127.0.0.1` local only).
    public var host = "0.0.0.0"
    /// TCP port (0 picks a free one; the bound port is logged).
    public var port = 8080
    /// Data directory: job records, inputs, results, registered styles, upload spool (`tmp`).
    public var dataDir = "./data"
    /// A directory of extra `*.safetensors` models, searched before the bundled `models/` and `../shared/models` (`ModelCatalog.searchPath`).
    public var modelsDir: String? = nil
    /// The model a job gets when it names none; loaded at start (startup fails if it is missing).
    public var defaultModel = "microast"
    /// Default `max_size` of a job (longer side, pixels) when the request gives none.
    public var maxSize = 512
    /// Largest `max_size` a request may ask for; larger values are answered 400.
    public var maxSizeCap = 2048
    /// Largest decoded image, in megapixels, checked from the image header before decoding (413 beyond).
    public var maxMegapixels: Double = 40
    /// Most styles (`style` + `style_id`) one job may blend.
    public var maxStylesPerJob = 8
    /// Most registered styles kept; registering beyond it is a 409 until some are deleted.
    public var maxStyles = 1000
    /// Most bytes of registered style images kept in all; beyond it registering is a 409.
    public var maxStyleBytes = 1 << 30
    /// Bounded FIFO queue: jobs waiting (not running) beyond this are refused with 429.
    public var queueSize = 64
    /// Worker threads, i.e. jobs run at once (the engine uses every core for each job).
    public var workers = 1
    /// Seconds a finished job (record and result) is kept; afterwards its URLs answer 410.
    public var jobTTLSeconds: Double = 86400
    /// Upper bound on `GET /v1/jobs/{id}?wait=N`, seconds (larger N are capped silently).
    public var waitCapSeconds: Double = 60
    /// On SIGTERM/SIGINT: seconds to let a running job finish before persisting it as queued.
    public var shutdownGraceSeconds: Double = 20
    /// Bearer API keys; empty disables auth. `/healthz` and `/readyz` are always open.
    public var apiKeys: [String] = []
    /// `trace`, `debug`, `info`, `notice`, `warning`, `error`, `critical`.
    public var logLevel = "info"
    /// `text` (one `key=value` line per event) or `json` (one JSON object per line).
    public var logFormat = "text"
    /// PostgreSQL URL (`postgres://user:password@host:port/db`): job records, the queue, blobs
    /// and styles live in that database, shared by every replica; null keeps them in `data_dir`.
    public var databaseURL: String? = nil
    /// What this replica does: `all` (API and workers), `api` (no engine), `worker` (runs jobs;
    /// serves only `/healthz`, `/readyz` and `/metrics`). `api` and `worker` need `database_url`.
    public var role = "all"
    /// Seconds a worker's claim on a job lasts without renewal (database only); a job whose
    /// replica died runs again elsewhere this long after it stopped renewing.
    public var jobLeaseSeconds: Double = 30
    /// A job whose worker died this many times fails instead of running again.
    public var maxAttempts = 3
    /// Database connections per replica (at least workers + 3).
    public var databasePoolSize = 8
    /// HTTP limits and timeouts.
    public var http = HTTP()
    /// HTTPS: both paths set turn TLS on.
    public var tls = TLS()

    /// HTTP limits and timeouts; the defaults are HTTPCore's own.
    public struct HTTP: Equatable, Sendable {
        /// Request line + headers, bytes (431 beyond).
        public var maxHeaderBytes = httpDefaults.maxHeaderBytes
        /// Header fields per request (431 beyond).
        public var maxHeaderCount = httpDefaults.maxHeaderCount
        /// Request body, bytes (413 beyond). Also bounds each uploaded file.
        public var maxBodyBytes = httpDefaults.maxBodyBytes
        /// Bodies above this many bytes are spooled to `<data_dir>/tmp` instead of memory.
        public var bodyMemoryThreshold = httpDefaults.bodyMemoryThreshold
        /// Open connections (capped below the open-file limit); at the limit the oldest idle or
        /// incomplete connection is closed to make room, and 503 only when all are being answered.
        public var maxConnections = httpDefaults.maxConnections
        /// Open connections from one client address; beyond it that address's oldest idle or incomplete one is closed.
        public var maxConnectionsPerAddress = httpDefaults.maxConnectionsPerAddress
        /// Slowest average request body, bytes per second, after `body_timeout_seconds` of grace (408 below it).
        public var minBodyBytesPerSecond = httpDefaults.minBodyBytesPerSecond
        /// Seconds to receive a whole request head (408 and close).
        public var headerTimeoutSeconds = httpDefaults.headerTimeout
        /// Seconds a request body may stall between reads (408 and close).
        public var bodyTimeoutSeconds = httpDefaults.bodyTimeout
        /// Seconds an idle keep-alive connection is kept open.
        public var idleTimeoutSeconds = httpDefaults.idleTimeout
        /// Threads watching the sockets (one epoll event loop each); nil keeps HTTPCore's default.
        public var eventLoopThreads: Int? = nil
        public init() {}
    }

    /// PEM paths; both null (the default) serves plain HTTP.
    public struct TLS: Equatable, Sendable {
        /// Certificate (chain) PEM file.
        public var cert: String? = nil
        /// Private key PEM file.
        public var key: String? = nil
        public init() {}
    }

    /// The defaults.
    public init() {}

    /// `max_megapixels` as a pixel count.
    public var maxPixels: Int { Int((maxMegapixels * 1_000_000).rounded()) }
}

/// A configuration problem found at startup; `description` is one line naming the key and its source.
public struct ConfigError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

// MARK: - The settings table

/// A JSON value as read from or written to a config file.
enum ConfigJSON: Codable, Equatable {
    case null, bool(Bool), int(Int), number(Double), string(String), array([ConfigJSON]), object([String: ConfigJSON])

    init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null }
        else if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let i = try? c.decode(Int.self) { self = .int(i) }
        else if let d = try? c.decode(Double.self) { self = .number(d) }
        else if let s = try? c.decode(String.self) { self = .string(s) }
        else if let a = try? c.decode([ConfigJSON].self) { self = .array(a) }
        else { self = .object(try c.decode([String: ConfigJSON].self)) }
    }

    func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .null: try c.encodeNil()
        case .bool(let b): try c.encode(b)
        case .int(let i): try c.encode(i)
        case .number(let d): try c.encode(d)
        case .string(let s): try c.encode(s)
        case .array(let a): try c.encode(a)
        case .object(let o): try c.encode(o)
        }
    }
}

extension StylistConfig {
    /// One setting: its key (`http.max_body_bytes`), environment variable, how it is read from JSON
    /// and from a variable, written back, and checked. Every fact about a setting lives here once;
    /// the JSON coding, the environment overrides and the validation all walk this table.
    struct Setting {
        let key: String
        let env: String
        let read: (StylistConfig) -> ConfigJSON
        let fromJSON: (inout StylistConfig, ConfigJSON) throws -> Void
        let fromEnvironment: (inout StylistConfig, String) throws -> Void
        /// The problem with the current value, or nil.
        let check: (StylistConfig) -> String?
    }

    private static func environmentName(_ key: String) -> String {
        "STYLIST_" + key.uppercased().replacingOccurrences(of: ".", with: "_")
    }

    private static func integer(_ key: String, _ path: WritableKeyPath<StylistConfig, Int>, _ valid: ClosedRange<Int>) -> Setting {
        Setting(key: key, env: environmentName(key), read: { .int($0[keyPath: path]) },
                fromJSON: { c, v in
                    guard case .int(let i) = v else { throw ConfigError("'\(key)' must be an integer\(v == .null ? ", not null" : "")") }
                    c[keyPath: path] = i
                },
                fromEnvironment: { c, s in c[keyPath: path] = try parseInteger(s) },
                check: { c in rangeProblem(key, c[keyPath: path], valid) })
    }

    /// An integer that may be null (JSON) or empty (environment) for "not set".
    private static func optionalInteger(_ key: String, _ path: WritableKeyPath<StylistConfig, Int?>, _ valid: ClosedRange<Int>) -> Setting {
        Setting(key: key, env: environmentName(key), read: { c in c[keyPath: path].map(ConfigJSON.int) ?? .null },
                fromJSON: { c, v in
                    switch v {
                    case .null: c[keyPath: path] = nil
                    case .int(let i): c[keyPath: path] = i
                    default: throw ConfigError("'\(key)' must be an integer or null")
                    }
                },
                fromEnvironment: { c, s in c[keyPath: path] = s.isEmpty ? nil : try parseInteger(s) },
                check: { c in c[keyPath: path].flatMap { rangeProblem(key, $0, valid) } })
    }

    private static func parseInteger(_ s: String) throws -> Int {
        guard let i = Int(s.trimmingCharacters(in: .whitespaces)) else { throw ConfigError("'\(s)' is not an integer") }
        return i
    }

    /// The problem with `value` of `key` when it is outside `valid`, or nil.
    private static func rangeProblem(_ key: String, _ value: Int, _ valid: ClosedRange<Int>) -> String? {
        if valid.contains(value) { return nil }
        if valid.upperBound == .max { return "\(key) must be at least \(valid.lowerBound), got \(value)" }
        return "\(key) must be \(valid.lowerBound)...\(valid.upperBound), got \(value)"
    }

    private static func number(_ key: String, _ path: WritableKeyPath<StylistConfig, Double>, _ rule: String,
                               _ valid: @escaping (Double) -> Bool) -> Setting {
        Setting(key: key, env: environmentName(key), read: { .number($0[keyPath: path]) },
                fromJSON: { c, v in
                    switch v {
                    case .int(let i): c[keyPath: path] = Double(i)
                    case .number(let d): c[keyPath: path] = d
                    default: throw ConfigError("'\(key)' must be a number\(v == .null ? ", not null" : "")")
                    }
                },
                fromEnvironment: { c, s in
                    guard let d = Double(s.trimmingCharacters(in: .whitespaces)), d.isFinite else { throw ConfigError("'\(s)' is not a number") }
                    c[keyPath: path] = d
                },
                check: { c in valid(c[keyPath: path]) ? nil : "\(key) must be \(rule), got \(JSONValue.number(c[keyPath: path]))" })
    }

    private static func text(_ key: String, _ path: WritableKeyPath<StylistConfig, String>, _ rule: String = "non-empty",
                             _ valid: @escaping (String) -> Bool = { !$0.isEmpty }) -> Setting {
        Setting(key: key, env: environmentName(key), read: { .string($0[keyPath: path]) },
                fromJSON: { c, v in
                    guard case .string(let s) = v else { throw ConfigError("'\(key)' must be a string\(v == .null ? ", not null" : "")") }
                    c[keyPath: path] = s
                },
                fromEnvironment: { c, s in c[keyPath: path] = s },
                check: { c in valid(c[keyPath: path]) ? nil : "\(key) must be \(rule); got '\(c[keyPath: path])'" })
    }

    /// A string that may be null (JSON) or empty (environment) for "not set".
    private static func optionalText(_ key: String, _ path: WritableKeyPath<StylistConfig, String?>, env: String? = nil) -> Setting {
        Setting(key: key, env: env ?? environmentName(key), read: { c in c[keyPath: path].map(ConfigJSON.string) ?? .null },
                fromJSON: { c, v in
                    switch v {
                    case .null: c[keyPath: path] = nil
                    case .string(let s): c[keyPath: path] = s
                    default: throw ConfigError("'\(key)' must be a string or null")
                    }
                },
                fromEnvironment: { c, s in c[keyPath: path] = s.isEmpty ? nil : s },
                check: { _ in nil })
    }

    /// Every setting of `stylist serve`, in the order of config/stylist.json.
    static let settings: [Setting] = [
        text("host", \.host),
        integer("port", \.port, 0...65535),
        text("data_dir", \.dataDir),
        optionalText("models_dir", \.modelsDir, env: "STYLIST_MODELS"),
        text("default_model", \.defaultModel),
        integer("max_size", \.maxSize, 16...16384),
        integer("max_size_cap", \.maxSizeCap, 16...16384),
        number("max_megapixels", \.maxMegapixels, "> 0 and <= 1000") { $0 > 0 && $0 <= 1000 },
        integer("max_styles_per_job", \.maxStylesPerJob, 1...64),
        integer("max_styles", \.maxStyles, 1...Int.max),
        integer("max_style_bytes", \.maxStyleBytes, (1 << 20)...Int.max),
        integer("queue_size", \.queueSize, 1...Int.max),
        integer("workers", \.workers, 1...64),
        number("job_ttl_seconds", \.jobTTLSeconds, "positive") { $0 > 0 },
        number("wait_cap_seconds", \.waitCapSeconds, "0...3600") { $0 >= 0 && $0 <= 3600 },
        number("shutdown_grace_seconds", \.shutdownGraceSeconds, "non-negative") { $0 >= 0 },
        optionalText("database_url", \.databaseURL),
        text("role", \.role, "one of all, api, worker") { ["all", "api", "worker"].contains($0) },
        number("job_lease_seconds", \.jobLeaseSeconds, "1...3600") { $0 >= 1 && $0 <= 3600 },
        integer("max_attempts", \.maxAttempts, 1...100),
        integer("database_pool_size", \.databasePoolSize, 2...256),
        Setting(key: "api_keys", env: "STYLIST_API_KEYS", read: { .array($0.apiKeys.map(ConfigJSON.string)) },
                fromJSON: { c, v in
                    guard case .array(let items) = v else { throw ConfigError("'api_keys' must be an array of strings") }
                    c.apiKeys = try items.map {
                        guard case .string(let s) = $0 else { throw ConfigError("'api_keys' must be an array of strings") }
                        return s
                    }
                },
                fromEnvironment: { c, s in
                    c.apiKeys = s.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
                },
                check: { c in
                    c.apiKeys.contains { $0.isEmpty || $0.contains { $0 == " " || $0 == "," } }
                        ? "api_keys must be non-empty strings without spaces or commas" : nil
                }),
        text("log_level", \.logLevel, "one of trace, debug, info, notice, warning, error, critical") { LogSetup.level($0) != nil },
        text("log_format", \.logFormat, "'text' or 'json'") { ["text", "json"].contains($0) },
        integer("http.max_header_bytes", \.http.maxHeaderBytes, 1024...Int.max),
        integer("http.max_header_count", \.http.maxHeaderCount, 8...Int.max),
        integer("http.max_body_bytes", \.http.maxBodyBytes, 1024...Int.max),
        integer("http.body_memory_threshold", \.http.bodyMemoryThreshold, 0...Int.max),
        integer("http.max_connections", \.http.maxConnections, 1...Int.max),
        integer("http.max_connections_per_address", \.http.maxConnectionsPerAddress, 1...Int.max),
        integer("http.min_body_bytes_per_second", \.http.minBodyBytesPerSecond, 0...Int.max),
        number("http.header_timeout_seconds", \.http.headerTimeoutSeconds, "positive") { $0 > 0 },
        number("http.body_timeout_seconds", \.http.bodyTimeoutSeconds, "positive") { $0 > 0 },
        number("http.idle_timeout_seconds", \.http.idleTimeoutSeconds, "positive") { $0 > 0 },
        // One loop per core is the design: a count far beyond any machine's cores is a mistake, not a tuning.
        optionalInteger("http.event_loop_threads", \.http.eventLoopThreads, 1...256),
        optionalText("tls.cert", \.tls.cert),
        optionalText("tls.key", \.tls.key),
    ]


    public init(from decoder: Decoder) throws {
        self.init()
        guard case .object(let root) = try ConfigJSON(from: decoder) else { throw ConfigError("the file must hold a JSON object") }
        let byKey = Dictionary(uniqueKeysWithValues: Self.settings.map { ($0.key, $0) })
        let sections = Set(Self.settings.compactMap { $0.key.split(separator: ".").count > 1 ? String($0.key.split(separator: ".")[0]) : nil })
        func apply(_ object: [String: ConfigJSON], prefix: String) throws {
            for (name, value) in object.sorted(by: { $0.key < $1.key }) {
                let key = prefix + name
                if prefix.isEmpty, sections.contains(name) {
                    guard case .object(let inner) = value else { throw ConfigError("'\(key)' must be an object") }
                    try apply(inner, prefix: key + ".")
                } else if let setting = byKey[key] {
                    try setting.fromJSON(&self, value)
                } else {
                    let known = Self.settings.map(\.key).filter { prefix.isEmpty ? !$0.contains(".") : $0.hasPrefix(prefix) }
                        .map { String($0.dropFirst(prefix.count)) } + (prefix.isEmpty ? sections.sorted() : [])
                    throw ConfigError("unknown setting '\(key)' (known: \(known.joined(separator: ", ")))")
                }
            }
        }
        try apply(root, prefix: "")
    }

    public func encode(to encoder: Encoder) throws {
        var root: [String: ConfigJSON] = [:]
        for setting in Self.settings {
            let parts = setting.key.split(separator: ".").map(String.init)
            if parts.count == 1 {
                root[parts[0]] = setting.read(self)
            } else {
                guard case .object(var section) = root[parts[0]] ?? .object([:]) else { continue }
                section[parts[1]] = setting.read(self)
                root[parts[0]] = .object(section)
            }
        }
        try ConfigJSON.object(root).encode(to: encoder)
    }
}

// MARK: - Loading

extension StylistConfig {
    /// The file read when neither `--config` nor `STYLIST_CONFIG` names one (skipped if absent).
    public static let defaultConfigPath = "config/stylist.json"

    /// Defaults, then the config file, then `STYLIST_*` variables of `environment`, then `flags`;
    /// validated. `file` nil reads `STYLIST_CONFIG` or, if present, `config/stylist.json`.
    /// Returns the configuration and the path of the file read (nil when none).
    public static func load(file: String?, environment: [String: String] = ProcessInfo.processInfo.environment,
                            flags: (inout StylistConfig) -> Void = { _ in }) throws -> (config: StylistConfig, file: String?) {
        var config = StylistConfig()
        var source: String?
        let explicit = file ?? environment["STYLIST_CONFIG"].flatMap { $0.isEmpty ? nil : $0 }
        if let path = explicit {
            guard FileManager.default.fileExists(atPath: path) else { throw ConfigError("config file \(path) does not exist") }
            source = path
        } else if FileManager.default.fileExists(atPath: defaultConfigPath) {
            source = defaultConfigPath
        }
        if let path = source {
            guard let data = FileManager.default.contents(atPath: path) else { throw ConfigError("cannot read config file \(path)") }
            config = try decode(data, name: path)
        }
        for setting in settings {
            guard let raw = environment[setting.env] else { continue }
            do {
                try setting.fromEnvironment(&config, raw)
            } catch let e as ConfigError {
                throw ConfigError("environment variable \(setting.env): \(e.description)")
            }
        }
        flags(&config)
        try config.validate()
        return (config, source)
    }

    /// Decodes a config file, turning decoding errors into one line naming the key.
    public static func decode(_ data: Data, name: String) throws -> StylistConfig {
        do {
            return try JSONDecoder().decode(StylistConfig.self, from: data)
        } catch let e as ConfigError {
            throw ConfigError("\(name): \(e.description)")
        } catch let e as DecodingError {
            throw ConfigError("\(name): \(describe(e))")
        } catch {
            throw ConfigError("\(name): \(error)")
        }
    }

    private static func describe(_ error: DecodingError) -> String {
        func path(_ ctx: DecodingError.Context) -> String {
            let p = ctx.codingPath.map(\.stringValue).joined(separator: ".")
            return p.isEmpty ? "the file" : "'\(p)'"
        }
        switch error {
        case .typeMismatch(let type, let ctx):
            return "\(path(ctx)) must be \(typeName(type))"
        case .valueNotFound(let type, let ctx):
            return "\(path(ctx)) must be \(typeName(type)), not null"
        case .keyNotFound(let key, _):
            return "missing '\(key.stringValue)'"
        case .dataCorrupted(let ctx):
            if ctx.codingPath.isEmpty { return "not valid JSON (\(ctx.underlyingError.map { "\($0)" } ?? ctx.debugDescription))" }
            return "\(path(ctx)) has an invalid value (\(ctx.debugDescription))"
        @unknown default:
            return "\(error)"
        }
    }

    private static func typeName(_ type: Any.Type) -> String {
        switch type {
        case is Int.Type: return "an integer"
        case is Double.Type: return "a number"
        case is String.Type: return "a string"
        case is Bool.Type: return "true or false"
        case is [String].Type: return "an array of strings"
        default: return "an object"
        }
    }

    /// Throws a `ConfigError` naming the first setting out of range.
    public func validate() throws {
        for setting in Self.settings {
            if let problem = setting.check(self) { throw ConfigError(problem) }
        }
        // Rules between settings.
        if maxSize > maxSizeCap { throw ConfigError("max_size must be 16...max_size_cap (\(maxSizeCap)), got \(maxSize)") }
        if (tls.cert == nil) != (tls.key == nil) { throw ConfigError("tls.cert and tls.key must be set together") }
        if role != "all" && databaseURL == nil {
            throw ConfigError("role '\(role)' needs database_url: api and worker replicas share their jobs through PostgreSQL")
        }
        if let url = databaseURL, !(url.hasPrefix("postgres://") || url.hasPrefix("postgresql://")) {
            throw ConfigError("database_url must start with postgres:// or postgresql://")
        }
        if let cert = tls.cert, !FileManager.default.fileExists(atPath: cert) { throw ConfigError("tls.cert: no such file \(cert)") }
        if let key = tls.key, !FileManager.default.fileExists(atPath: key) { throw ConfigError("tls.key: no such file \(key)") }
    }
}
