import Foundation
import Jobs
import Logging

/// One structured line per event on stderr: `text` is
/// `2026-01-02T03:04:05.678Z info stylist.http request method=GET path=/v1/jobs/x status=200 ms=0.4`,
/// `json` is `{"ts":"…","level":"info","logger":"stylist.http","msg":"request","method":"GET",…}`.
/// Lines are written with one `write(2)` each, so concurrent lines never interleave.
public struct StylistLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level
    let label: String
    let json: Bool
    let sink: @Sendable (String) -> Void

    /// A handler for `label` at `level`; `json` picks the format; `sink` receives each line (default: stderr).
    public init(label: String, level: Logger.Level, json: Bool, sink: (@Sendable (String) -> Void)? = nil) {
        self.label = label
        self.logLevel = level
        self.json = json
        self.sink = sink ?? { line in
            let bytes = Array(line.utf8)
            bytes.withUnsafeBytes { _ = write(2, $0.baseAddress, $0.count) }
        }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        let level = event.level, message = event.message
        var all = metadata
        if let explicit = event.metadata { all.merge(explicit) { $1 } }
        let keys = all.keys.sorted()
        let ts = JobsJSON.format(Date())
        if json {
            var out = "{\"ts\":\(JSONValue.quote(ts)),\"level\":\(JSONValue.quote(level.rawValue)),\"logger\":\(JSONValue.quote(label)),\"msg\":\(JSONValue.quote(message.description))"
            for k in keys { out += ",\(JSONValue.quote(k)):\(JSONValue.quote(all[k]!.description))" }
            sink(out + "}\n")
        } else {
            var out = "\(ts) \(level.rawValue) \(label) \(message.description)"
            for k in keys { out += " \(k)=\(Self.logfmt(all[k]!.description))" }
            sink(out + "\n")
        }
    }

    static func logfmt(_ s: String) -> String {
        if !s.isEmpty && !s.contains(where: { $0 == " " || $0 == "\"" || $0 == "=" || $0.isNewline }) { return s }
        return JSONValue.quote(s)
    }
}

/// Builds loggers from the configured level and format (no global bootstrap needed, so tests and
/// several servers in one process each get their own).
public enum LogSetup {
    /// The swift-log level named `name`.
    public static func level(_ name: String) -> Logger.Level? { Logger.Level(rawValue: name.lowercased()) }

    /// A logger for `label` following `config`'s `log_level` and `log_format`.
    public static func logger(_ label: String, config: StylistConfig, sink: (@Sendable (String) -> Void)? = nil) -> Logger {
        let level = level(config.logLevel) ?? .info
        let json = config.logFormat == "json"
        return Logger(label: label) { StylistLogHandler(label: $0, level: level, json: json, sink: sink) }
    }
}
