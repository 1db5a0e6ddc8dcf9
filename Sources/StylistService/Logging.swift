import Foundation
import HTTPCore
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
            var line = line
            line.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
        }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var all = metadata
        if let explicit = event.metadata {
            if all.isEmpty { all = explicit } else { all.merge(explicit) { $1 } }
        }
        let keys = all.keys.sorted()
        // Built as bytes with a hand-written timestamp: the request log is on by default, on every request.
        var out: [UInt8] = []
        out.reserveCapacity(160 + 24 * keys.count)
        if json {
            out.append(contentsOf: "{\"ts\":\"".utf8)
            LogTimestamp.append(to: &out)
            out.append(contentsOf: "\",\"level\":".utf8)
            appendJSONString(event.level.rawValue, to: &out)
            out.append(contentsOf: ",\"logger\":".utf8)
            appendJSONString(label, to: &out)
            out.append(contentsOf: ",\"msg\":".utf8)
            appendJSONString(event.message.description, to: &out)
            for k in keys {
                out.append(0x2C)
                appendJSONString(k, to: &out)
                out.append(0x3A)
                appendJSONString(all[k]!.description, to: &out)
            }
            out.append(contentsOf: "}\n".utf8)
        } else {
            LogTimestamp.append(to: &out)
            out.append(0x20)
            out.append(contentsOf: event.level.rawValue.utf8)
            out.append(0x20)
            out.append(contentsOf: label.utf8)
            out.append(0x20)
            out.append(contentsOf: event.message.description.utf8)
            for k in keys {
                out.append(0x20)
                out.append(contentsOf: k.utf8)
                out.append(0x3D)
                Self.appendLogfmt(all[k]!.description, to: &out)
            }
            out.append(0x0A)
        }
        sink(String(decoding: out, as: UTF8.self))
    }

    /// A logfmt value: as is when it is plain, else quoted as a JSON string.
    static func appendLogfmt(_ s: String, to out: inout [UInt8]) {
        if isPlain(s) { out.append(contentsOf: s.utf8) } else { appendJSONString(s, to: &out) }
    }

    /// Non-empty, with no space, quote, '=' or line break.
    static func isPlain(_ s: String) -> Bool {
        guard !s.isEmpty else { return false }
        var ascii = true
        for b in s.utf8 {
            if b == 0x20 || b == 0x22 || b == 0x3D || (b >= 0x0A && b <= 0x0D) { return false }
            if b >= 0x80 { ascii = false }
        }
        return ascii || !s.contains(where: \.isNewline)   // U+0085, U+2028 and U+2029 break lines too
    }
}

/// Facts a handler adds to its request's log line, filled while it runs and read when the line is
/// written; they travel beside the response, never in it.
public final class RequestLogFields: @unchecked Sendable {
    private let lock = NSLock()
    private var _job: String?

    public init() {}

    /// The job the request concerned, written as `job=`.
    public var job: String? {
        get { lock.lock(); defer { lock.unlock() }; return _job }
        set { lock.lock(); _job = newValue; lock.unlock() }
    }
}

/// The log line's UTC timestamp, `2026-01-02T03:04:05.678Z`, written as digits without a formatter.
enum LogTimestamp {
    static func append(to out: inout [UInt8]) {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var seconds = now.tv_sec
        var t = tm()
        gmtime_r(&seconds, &t)
        func digits(_ value: Int, _ count: Int) {
            var divisor = 1
            for _ in 1..<count { divisor *= 10 }
            var v = value
            while divisor > 0 {
                out.append(UInt8(0x30 + (v / divisor) % 10))
                v %= divisor
                divisor /= 10
            }
        }
        digits(Int(t.tm_year) + 1900, 4); out.append(0x2D)
        digits(Int(t.tm_mon) + 1, 2); out.append(0x2D)
        digits(Int(t.tm_mday), 2); out.append(0x54)
        digits(Int(t.tm_hour), 2); out.append(0x3A)
        digits(Int(t.tm_min), 2); out.append(0x3A)
        digits(Int(t.tm_sec), 2); out.append(0x2E)
        digits(now.tv_nsec / 1_000_000, 3); out.append(0x5A)
    }

    /// Milliseconds with two decimals ("12.34"), as the request log writes a duration.
    static func milliseconds(_ seconds: Double) -> String {
        let hundredths = Int((max(0, seconds) * 100_000).rounded())
        let fraction = hundredths % 100
        return "\(hundredths / 100).\(fraction < 10 ? "0" : "")\(fraction)"
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
