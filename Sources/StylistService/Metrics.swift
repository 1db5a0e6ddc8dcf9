import Foundation
import Jobs

/// A Prometheus histogram: cumulative buckets, sum and count.
struct Histogram {
    let bounds: [Double]
    var counts: [Int]
    var sum = 0.0
    var count = 0
    init(bounds: [Double]) {
        self.bounds = bounds
        counts = [Int](repeating: 0, count: bounds.count)
    }
    mutating func observe(_ v: Double) {
        for (i, b) in bounds.enumerated() where v <= b { counts[i] += 1 }
        sum += v
        count += 1
    }
    func render(_ name: String, labels: String, into out: inout String) {
        let sep = labels.isEmpty ? "" : labels + ","
        for (i, b) in bounds.enumerated() {
            out += "\(name)_bucket{\(sep)le=\"\(Metrics.format(b))\"} \(counts[i])\n"
        }
        out += "\(name)_bucket{\(sep)le=\"+Inf\"} \(count)\n"
        let braces = labels.isEmpty ? "" : "{\(labels)}"
        out += "\(name)_sum\(braces) \(Metrics.format(sum))\n"
        out += "\(name)_count\(braces) \(count)\n"
    }
}

/// The service's metrics, rendered in the Prometheus text format 0.0.4 by `GET /metrics`.
///
/// - `stylist_http_requests_total{route,method,status}`: requests answered by the application
///   (route is the template, `/v1/jobs/{id}`, or `unmatched`); errors the HTTP layer answers
///   itself (400 malformed, 408, 413 body, 431) are not routed and not counted here.
/// - `stylist_http_request_duration_seconds{route}`: time from the complete request to the
///   response being ready (for SSE: to the stream's start).
/// - `stylist_queue_depth`, `stylist_queue_capacity`, `stylist_jobs_running`.
/// - `stylist_jobs_total{outcome}`: jobs that reached succeeded/failed/canceled since start.
/// - `stylist_inference_seconds{model}`: engine time per succeeded job.
/// - `stylist_engine_gflops{model}`: GFLOP/s of the most recent job of each model.
/// - `stylist_styles_registered`, `stylist_style_code_cache_total{result="hit|miss"}`.
public final class Metrics: @unchecked Sendable {
    private let lock = NSLock()
    /// One counter per answered (route template, method, status).
    private struct RequestKey: Hashable {
        let route: String
        let method: String
        let status: Int
    }
    private var requests: [RequestKey: Int] = [:]
    private var latency: [String: Histogram] = [:]
    private var inference: [String: Histogram] = [:]
    private var gflops: [String: Double] = [:]
    private var codeCache: [String: Int] = ["hit": 0, "miss": 0]
    static let latencyBounds = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]
    static let inferenceBounds = [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300]

    public init() {}

    /// Methods kept as label values; any other is counted as `other`, so a client cannot grow the
    /// metrics with invented methods (routes are bounded already: templates or `unmatched`).
    static let methodLabels: Set<String> = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]

    /// The label value for a request method.
    static func methodLabel(_ method: String) -> String { methodLabels.contains(method) ? method : "other" }

    func recordRequest(route: String, method: String, status: Int, seconds: Double) {
        lock.lock()
        defer { lock.unlock() }
        requests[RequestKey(route: route, method: method, status: status), default: 0] += 1
        latency[route, default: Histogram(bounds: Self.latencyBounds)].observe(seconds)
    }

    func recordInference(model: String, seconds: Double, flops: Double) {
        lock.lock()
        defer { lock.unlock() }
        inference[model, default: Histogram(bounds: Self.inferenceBounds)].observe(seconds)
        if seconds > 0 { gflops[model] = flops / 1e9 / seconds }
    }

    func recordStyleCode(hit: Bool) {
        lock.lock()
        codeCache[hit ? "hit" : "miss", default: 0] += 1
        lock.unlock()
    }

    /// Every (route template, method, status) answered so far, with its count.
    public func observedResponses() -> [(route: String, method: String, status: Int, count: Int)] {
        lock.lock()
        defer { lock.unlock() }
        return requests.map { key, count in (key.route, key.method, key.status, count) }.sorted { ($0.route, $0.method, $0.status) < ($1.route, $1.method, $1.status) }
    }

    /// The exposition text.
    func render(jobs: JobStats, styles: Int) -> String {
        lock.lock()
        defer { lock.unlock() }
        var out = ""
        func family(_ name: String, _ type: String, _ help: String) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
        }
        family("stylist_http_requests_total", "counter", "HTTP requests answered, by route template, method and status.")
        for (key, count) in requests.sorted(by: { ($0.key.route, $0.key.method, $0.key.status) < ($1.key.route, $1.key.method, $1.key.status) }) {
            out += "stylist_http_requests_total{route=\"\(Self.escape(key.route))\",method=\"\(key.method)\",status=\"\(key.status)\"} \(count)\n"
        }
        family("stylist_http_request_duration_seconds", "histogram", "Time to answer a request, by route template.")
        for route in latency.keys.sorted() {
            latency[route]!.render("stylist_http_request_duration_seconds", labels: "route=\"\(Self.escape(route))\"", into: &out)
        }
        family("stylist_queue_depth", "gauge", "Jobs waiting in the queue.")
        out += "stylist_queue_depth \(jobs.queued)\n"
        family("stylist_queue_capacity", "gauge", "Queue capacity (queue_size).")
        out += "stylist_queue_capacity \(jobs.capacity)\n"
        family("stylist_jobs_running", "gauge", "Jobs being executed.")
        out += "stylist_jobs_running \(jobs.running)\n"
        family("stylist_jobs_total", "counter", "Jobs finished since start, by outcome.")
        for outcome in [JobStatus.succeeded, .failed, .canceled] {
            out += "stylist_jobs_total{outcome=\"\(outcome.rawValue)\"} \(jobs.finished[outcome] ?? 0)\n"
        }
        family("stylist_inference_seconds", "histogram", "Engine time of succeeded jobs, by model.")
        for model in inference.keys.sorted() {
            inference[model]!.render("stylist_inference_seconds", labels: "model=\"\(Self.escape(model))\"", into: &out)
        }
        family("stylist_engine_gflops", "gauge", "Engine throughput of the most recent job, GFLOP/s, by model.")
        for model in gflops.keys.sorted() {
            out += "stylist_engine_gflops{model=\"\(Self.escape(model))\"} \(Self.format(gflops[model]!))\n"
        }
        family("stylist_styles_registered", "gauge", "Registered styles.")
        out += "stylist_styles_registered \(styles)\n"
        family("stylist_style_code_cache_total", "counter", "Registered-style code lookups by jobs, by result.")
        for r in ["hit", "miss"] { out += "stylist_style_code_cache_total{result=\"\(r)\"} \(codeCache[r] ?? 0)\n" }
        return out
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "\n", with: "\\n")
    }

    static func format(_ d: Double) -> String {
        if d.isNaN { return "NaN" }
        if d.isInfinite { return d > 0 ? "+Inf" : "-Inf" }
        if d == d.rounded(), abs(d) < 1e15 { return String(Int64(d)) }
        return "\(d)"
    }
}
