import Foundation

/// Every setting of `stylist serve`, with the product defaults (SPEC §3).
///
/// Precedence, lowest first: these defaults, then the JSON config file (`config/stylist.json`,
/// or `--config FILE`, or `STYLIST_CONFIG`), then `STYLIST_*` environment variables, then
/// command-line flags. The JSON keys are the snake_case names below; nested sections are `http`
/// and `tls`. An unknown key, a value of the wrong type or out of range is a startup error that
/// names the key and where it came from.
///
/// The environment variable of a key is `STYLIST_` + the key upper-cased with `.` -> `_`
/// (`http.max_body_bytes` -> `STYLIST_HTTP_MAX_BODY_BYTES`). Two exceptions: `models_dir` is
/// `STYLIST_MODELS` (the name SPEC §5 gives it; like every variable it overrides the file), and
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
    /// HTTP limits and timeouts.
    public var http = HTTP()
    /// HTTPS: both paths set turn TLS on.
    public var tls = TLS()

    /// HTTP limits and timeouts (SPEC §3).
    public struct HTTP: Codable, Equatable, Sendable {
        /// Request line + headers, bytes (431 beyond).
        public var maxHeaderBytes = 16 * 1024
        /// Header fields per request (431 beyond).
        public var maxHeaderCount = 100
        /// Request body, bytes (413 beyond). Also bounds each uploaded file.
        public var maxBodyBytes = 25 * 1024 * 1024
        /// Bodies above this many bytes are spooled to `<data_dir>/tmp` instead of memory.
        public var bodyMemoryThreshold = 1024 * 1024
        /// Open connections (capped below the open-file limit); at the limit the oldest idle or
        /// incomplete connection is closed to make room, and 503 only when all are being answered.
        public var maxConnections = 10_000
        /// Open connections from one client address; beyond it that address's oldest idle or incomplete one is closed.
        public var maxConnectionsPerAddress = 256
        /// Slowest average request body, bytes per second, after `body_timeout_seconds` of grace (408 below it).
        public var minBodyBytesPerSecond = 8192
        /// Seconds to receive a whole request head (408 and close).
        public var headerTimeoutSeconds: Double = 10
        /// Seconds a request body may stall between reads (408 and close).
        public var bodyTimeoutSeconds: Double = 30
        /// Seconds an idle keep-alive connection is kept open.
        public var idleTimeoutSeconds: Double = 60
        public init() {}
    }

    /// PEM paths; both null (the default) serves plain HTTP.
    public struct TLS: Codable, Equatable, Sendable {
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

// MARK: - Strict JSON coding

struct ConfigKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(_ s: String) { stringValue = s }
    init?(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}

private func rejectUnknownKeys(_ decoder: Decoder, allowed: [String]) throws {
    let c = try decoder.container(keyedBy: ConfigKey.self)
    for key in c.allKeys where !allowed.contains(key.stringValue) {
        let path = (decoder.codingPath.map(\.stringValue) + [key.stringValue]).joined(separator: ".")
        throw ConfigError("unknown setting '\(path)' (known: \(allowed.joined(separator: ", ")))")
    }
}

extension KeyedDecodingContainer where K == ConfigKey {
    fileprivate func value<T: Decodable>(_ key: String, _ fallback: T) throws -> T {
        try decodeIfPresent(T.self, forKey: ConfigKey(key)) ?? fallback
    }
    fileprivate func optional(_ key: String, _ fallback: String?) throws -> String? {
        guard contains(ConfigKey(key)) else { return fallback }
        return try decodeIfPresent(String.self, forKey: ConfigKey(key))
    }
}

extension StylistConfig {
    static let jsonKeys = ["host", "port", "data_dir", "models_dir", "default_model", "max_size", "max_size_cap",
                           "max_megapixels", "max_styles_per_job", "max_styles", "max_style_bytes", "queue_size", "workers", "job_ttl_seconds",
                           "wait_cap_seconds", "shutdown_grace_seconds", "api_keys", "log_level", "log_format", "http", "tls"]

    public init(from decoder: Decoder) throws {
        try rejectUnknownKeys(decoder, allowed: Self.jsonKeys)
        let c = try decoder.container(keyedBy: ConfigKey.self)
        let d = StylistConfig()
        host = try c.value("host", d.host)
        port = try c.value("port", d.port)
        dataDir = try c.value("data_dir", d.dataDir)
        modelsDir = try c.optional("models_dir", d.modelsDir)
        defaultModel = try c.value("default_model", d.defaultModel)
        maxSize = try c.value("max_size", d.maxSize)
        maxSizeCap = try c.value("max_size_cap", d.maxSizeCap)
        maxMegapixels = try c.value("max_megapixels", d.maxMegapixels)
        maxStylesPerJob = try c.value("max_styles_per_job", d.maxStylesPerJob)
        maxStyles = try c.value("max_styles", d.maxStyles)
        maxStyleBytes = try c.value("max_style_bytes", d.maxStyleBytes)
        queueSize = try c.value("queue_size", d.queueSize)
        workers = try c.value("workers", d.workers)
        jobTTLSeconds = try c.value("job_ttl_seconds", d.jobTTLSeconds)
        waitCapSeconds = try c.value("wait_cap_seconds", d.waitCapSeconds)
        shutdownGraceSeconds = try c.value("shutdown_grace_seconds", d.shutdownGraceSeconds)
        apiKeys = try c.value("api_keys", d.apiKeys)
        logLevel = try c.value("log_level", d.logLevel)
        logFormat = try c.value("log_format", d.logFormat)
        http = try c.value("http", d.http)
        tls = try c.value("tls", d.tls)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: ConfigKey.self)
        try c.encode(host, forKey: ConfigKey("host"))
        try c.encode(port, forKey: ConfigKey("port"))
        try c.encode(dataDir, forKey: ConfigKey("data_dir"))
        try c.encode(modelsDir, forKey: ConfigKey("models_dir"))
        try c.encode(defaultModel, forKey: ConfigKey("default_model"))
        try c.encode(maxSize, forKey: ConfigKey("max_size"))
        try c.encode(maxSizeCap, forKey: ConfigKey("max_size_cap"))
        try c.encode(maxMegapixels, forKey: ConfigKey("max_megapixels"))
        try c.encode(maxStylesPerJob, forKey: ConfigKey("max_styles_per_job"))
        try c.encode(maxStyles, forKey: ConfigKey("max_styles"))
        try c.encode(maxStyleBytes, forKey: ConfigKey("max_style_bytes"))
        try c.encode(queueSize, forKey: ConfigKey("queue_size"))
        try c.encode(workers, forKey: ConfigKey("workers"))
        try c.encode(jobTTLSeconds, forKey: ConfigKey("job_ttl_seconds"))
        try c.encode(waitCapSeconds, forKey: ConfigKey("wait_cap_seconds"))
        try c.encode(shutdownGraceSeconds, forKey: ConfigKey("shutdown_grace_seconds"))
        try c.encode(apiKeys, forKey: ConfigKey("api_keys"))
        try c.encode(logLevel, forKey: ConfigKey("log_level"))
        try c.encode(logFormat, forKey: ConfigKey("log_format"))
        try c.encode(http, forKey: ConfigKey("http"))
        try c.encode(tls, forKey: ConfigKey("tls"))
    }
}

extension StylistConfig.HTTP {
    static let jsonKeys = ["max_header_bytes", "max_header_count", "max_body_bytes", "body_memory_threshold",
                           "max_connections", "max_connections_per_address", "min_body_bytes_per_second", "header_timeout_seconds", "body_timeout_seconds", "idle_timeout_seconds"]

    public init(from decoder: Decoder) throws {
        try rejectUnknownKeys(decoder, allowed: Self.jsonKeys)
        let c = try decoder.container(keyedBy: ConfigKey.self)
        let d = StylistConfig.HTTP()
        maxHeaderBytes = try c.value("max_header_bytes", d.maxHeaderBytes)
        maxHeaderCount = try c.value("max_header_count", d.maxHeaderCount)
        maxBodyBytes = try c.value("max_body_bytes", d.maxBodyBytes)
        bodyMemoryThreshold = try c.value("body_memory_threshold", d.bodyMemoryThreshold)
        maxConnections = try c.value("max_connections", d.maxConnections)
        maxConnectionsPerAddress = try c.value("max_connections_per_address", d.maxConnectionsPerAddress)
        minBodyBytesPerSecond = try c.value("min_body_bytes_per_second", d.minBodyBytesPerSecond)
        headerTimeoutSeconds = try c.value("header_timeout_seconds", d.headerTimeoutSeconds)
        bodyTimeoutSeconds = try c.value("body_timeout_seconds", d.bodyTimeoutSeconds)
        idleTimeoutSeconds = try c.value("idle_timeout_seconds", d.idleTimeoutSeconds)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: ConfigKey.self)
        try c.encode(maxHeaderBytes, forKey: ConfigKey("max_header_bytes"))
        try c.encode(maxHeaderCount, forKey: ConfigKey("max_header_count"))
        try c.encode(maxBodyBytes, forKey: ConfigKey("max_body_bytes"))
        try c.encode(bodyMemoryThreshold, forKey: ConfigKey("body_memory_threshold"))
        try c.encode(maxConnections, forKey: ConfigKey("max_connections"))
        try c.encode(maxConnectionsPerAddress, forKey: ConfigKey("max_connections_per_address"))
        try c.encode(minBodyBytesPerSecond, forKey: ConfigKey("min_body_bytes_per_second"))
        try c.encode(headerTimeoutSeconds, forKey: ConfigKey("header_timeout_seconds"))
        try c.encode(bodyTimeoutSeconds, forKey: ConfigKey("body_timeout_seconds"))
        try c.encode(idleTimeoutSeconds, forKey: ConfigKey("idle_timeout_seconds"))
    }
}

extension StylistConfig.TLS {
    public init(from decoder: Decoder) throws {
        try rejectUnknownKeys(decoder, allowed: ["cert", "key"])
        let c = try decoder.container(keyedBy: ConfigKey.self)
        cert = try c.optional("cert", nil)
        key = try c.optional("key", nil)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: ConfigKey.self)
        try c.encode(cert, forKey: ConfigKey("cert"))
        try c.encode(key, forKey: ConfigKey("key"))
    }
}

// MARK: - Loading

extension StylistConfig {
    /// The file read when neither `--config` nor `STYLIST_CONFIG` names one (skipped if absent).
    public static let defaultConfigPath = "config/stylist.json"

    /// Names of the environment variables `load` reads, with the key each one sets.
    public static let environmentVariables: [(variable: String, key: String)] = settings.map { ($0.env, $0.key) }

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
                try setting.apply(&config, raw)
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

    struct Setting {
        let key: String
        let env: String
        let apply: (inout StylistConfig, String) throws -> Void
    }

    private static func int(_ s: String) throws -> Int {
        guard let v = Int(s.trimmingCharacters(in: .whitespaces)) else { throw ConfigError("'\(s)' is not an integer") }
        return v
    }
    private static func number(_ s: String) throws -> Double {
        guard let v = Double(s.trimmingCharacters(in: .whitespaces)), v.isFinite else { throw ConfigError("'\(s)' is not a number") }
        return v
    }
    private static func optionalString(_ s: String) -> String? { s.isEmpty ? nil : s }

    static let settings: [Setting] = {
        func s(_ key: String, env: String? = nil, _ apply: @escaping (inout StylistConfig, String) throws -> Void) -> Setting {
            Setting(key: key, env: env ?? "STYLIST_" + key.uppercased().replacingOccurrences(of: ".", with: "_"), apply: apply)
        }
        return [
            s("host") { $0.host = $1 },
            s("port") { $0.port = try int($1) },
            s("data_dir") { $0.dataDir = $1 },
            s("models_dir", env: "STYLIST_MODELS") { $0.modelsDir = optionalString($1) },
            s("default_model") { $0.defaultModel = $1 },
            s("max_size") { $0.maxSize = try int($1) },
            s("max_size_cap") { $0.maxSizeCap = try int($1) },
            s("max_megapixels") { $0.maxMegapixels = try number($1) },
            s("max_styles_per_job") { $0.maxStylesPerJob = try int($1) },
            s("max_styles") { $0.maxStyles = try int($1) },
            s("max_style_bytes") { $0.maxStyleBytes = try int($1) },
            s("queue_size") { $0.queueSize = try int($1) },
            s("workers") { $0.workers = try int($1) },
            s("job_ttl_seconds") { $0.jobTTLSeconds = try number($1) },
            s("wait_cap_seconds") { $0.waitCapSeconds = try number($1) },
            s("shutdown_grace_seconds") { $0.shutdownGraceSeconds = try number($1) },
            s("api_keys") { c, v in
                c.apiKeys = v.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            },
            s("log_level") { $0.logLevel = $1 },
            s("log_format") { $0.logFormat = $1 },
            s("http.max_header_bytes") { $0.http.maxHeaderBytes = try int($1) },
            s("http.max_header_count") { $0.http.maxHeaderCount = try int($1) },
            s("http.max_body_bytes") { $0.http.maxBodyBytes = try int($1) },
            s("http.body_memory_threshold") { $0.http.bodyMemoryThreshold = try int($1) },
            s("http.max_connections") { $0.http.maxConnections = try int($1) },
            s("http.max_connections_per_address") { $0.http.maxConnectionsPerAddress = try int($1) },
            s("http.min_body_bytes_per_second") { $0.http.minBodyBytesPerSecond = try int($1) },
            s("http.header_timeout_seconds") { $0.http.headerTimeoutSeconds = try number($1) },
            s("http.body_timeout_seconds") { $0.http.bodyTimeoutSeconds = try number($1) },
            s("http.idle_timeout_seconds") { $0.http.idleTimeoutSeconds = try number($1) },
            s("tls.cert") { $0.tls.cert = optionalString($1) },
            s("tls.key") { $0.tls.key = optionalString($1) },
        ]
    }()

    /// Throws a `ConfigError` naming the first setting out of range.
    public func validate() throws {
        func check(_ ok: Bool, _ message: @autoclosure () -> String) throws {
            if !ok { throw ConfigError(message()) }
        }
        try check(!host.isEmpty, "host must not be empty")
        try check((0...65535).contains(port), "port must be 0...65535, got \(port)")
        try check(!dataDir.isEmpty, "data_dir must not be empty")
        try check(!defaultModel.isEmpty, "default_model must not be empty")
        try check(maxSizeCap >= 16 && maxSizeCap <= 16384, "max_size_cap must be 16...16384, got \(maxSizeCap)")
        try check(maxSize >= 16 && maxSize <= maxSizeCap, "max_size must be 16...max_size_cap (\(maxSizeCap)), got \(maxSize)")
        try check(maxMegapixels > 0 && maxMegapixels <= 1000, "max_megapixels must be > 0 and <= 1000, got \(maxMegapixels)")
        try check(maxStylesPerJob >= 1 && maxStylesPerJob <= 64, "max_styles_per_job must be 1...64, got \(maxStylesPerJob)")
        try check(maxStyles >= 1, "max_styles must be at least 1, got \(maxStyles)")
        try check(maxStyleBytes >= 1 << 20, "max_style_bytes must be at least 1048576, got \(maxStyleBytes)")
        try check(queueSize >= 1, "queue_size must be at least 1, got \(queueSize)")
        try check(workers >= 1 && workers <= 64, "workers must be 1...64, got \(workers)")
        try check(jobTTLSeconds > 0, "job_ttl_seconds must be positive, got \(jobTTLSeconds)")
        try check(waitCapSeconds >= 0 && waitCapSeconds <= 3600, "wait_cap_seconds must be 0...3600, got \(waitCapSeconds)")
        try check(shutdownGraceSeconds >= 0, "shutdown_grace_seconds must not be negative, got \(shutdownGraceSeconds)")
        try check(!apiKeys.contains(where: { $0.isEmpty || $0.contains(where: { $0 == " " || $0 == "," }) }),
                  "api_keys must be non-empty strings without spaces or commas")
        try check(LogSetup.level(logLevel) != nil, "log_level must be one of trace, debug, info, notice, warning, error, critical; got '\(logLevel)'")
        try check(["text", "json"].contains(logFormat), "log_format must be 'text' or 'json', got '\(logFormat)'")
        try check(http.maxHeaderBytes >= 1024, "http.max_header_bytes must be at least 1024, got \(http.maxHeaderBytes)")
        try check(http.maxHeaderCount >= 8, "http.max_header_count must be at least 8, got \(http.maxHeaderCount)")
        try check(http.maxBodyBytes >= 1024, "http.max_body_bytes must be at least 1024, got \(http.maxBodyBytes)")
        try check(http.bodyMemoryThreshold >= 0, "http.body_memory_threshold must not be negative")
        try check(http.maxConnections >= 1, "http.max_connections must be at least 1, got \(http.maxConnections)")
        try check(http.maxConnectionsPerAddress >= 1, "http.max_connections_per_address must be at least 1, got \(http.maxConnectionsPerAddress)")
        try check(http.minBodyBytesPerSecond >= 0, "http.min_body_bytes_per_second must not be negative")
        try check(http.headerTimeoutSeconds > 0, "http.header_timeout_seconds must be positive")
        try check(http.bodyTimeoutSeconds > 0, "http.body_timeout_seconds must be positive")
        try check(http.idleTimeoutSeconds > 0, "http.idle_timeout_seconds must be positive")
        try check((tls.cert == nil) == (tls.key == nil), "tls.cert and tls.key must be set together")
        if let cert = tls.cert { try check(FileManager.default.fileExists(atPath: cert), "tls.cert: no such file \(cert)") }
        if let key = tls.key { try check(FileManager.default.fileExists(atPath: key), "tls.key: no such file \(key)") }
    }
}
