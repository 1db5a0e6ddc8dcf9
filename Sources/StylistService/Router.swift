import Foundation
import HTTPCore

/// What a handler gets: the request and the path parameters of its route.
public struct RequestContext: Sendable {
    public var request: HTTPRequest
    public var params: [String: String]
    /// The route template, e.g. `/v1/jobs/{id}` (the metrics label).
    public var route: String
    /// What the handler adds to the request's log line (Logging.swift).
    public let log = RequestLogFields()
    public var head: HTTPRequestHead { request.head }
    public func param(_ name: String) -> String { params[name] ?? "" }
}

/// A route handler; throw `APIError` for problem+json answers.
public typealias Handler = @Sendable (RequestContext) async throws -> HTTPResponse

/// A handler that answers without suspending, on the connection's queue (`HTTPResponder.respondImmediately`);
/// nil leaves the request to the route's `Handler`.
public typealias ImmediateHandler = @Sendable (RequestContext) throws -> HTTPResponse?

/// Method + path-template routing. Templates are `/`-separated literals and `{name}` segments
/// (one whole segment each). `HEAD` is served by the `GET` handler (the server drops the body).
/// A path no template matches is 404; a path matched with another method is 405 with `Allow`.
public struct Router: Sendable {
    enum Segment: Sendable, Equatable {
        case literal(String)
        case param(String)
    }

    struct Route: Sendable {
        let method: String
        let template: String
        let segments: [Segment]
        let handler: Handler
        let immediate: ImmediateHandler?
    }

    /// What `match` found.
    public enum Match {
        case found(handler: Handler, params: [String: String], route: String, immediate: ImmediateHandler?)
        case methodNotAllowed(allow: [String], route: String)
        case notFound
    }

    private(set) var routes: [Route] = []

    public init() {}

    /// Adds a route. `template` like `/v1/jobs/{id}/result`; `immediate` answers what needs no waiting.
    public mutating func add(_ method: String, _ template: String, immediate: ImmediateHandler? = nil, _ handler: @escaping Handler) {
        let segments: [Segment] = template.split(separator: "/", omittingEmptySubsequences: true).map { s in
            if s.hasPrefix("{") && s.hasSuffix("}") { return .param(String(s.dropFirst().dropLast())) }
            return .literal(String(s))
        }
        routes.append(Route(method: method, template: template, segments: segments, handler: handler, immediate: immediate))
    }

    /// Drops every route whose template is not in `templates`.
    public mutating func keep(_ templates: Set<String>) {
        routes.removeAll { !templates.contains($0.template) }
    }

    /// Every (method, template) pair served, HEAD included where GET is.
    public var table: [(method: String, template: String)] {
        var out: [(String, String)] = []
        for r in routes {
            out.append((r.method, r.template))
            if r.method == "GET" { out.append(("HEAD", r.template)) }
        }
        return out
    }

    /// Finds the handler for `method` and `path` (already percent-decoded).
    public func match(method: String, path: String) -> Match {
        let parts = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
        // "/" -> [""], "/a/" -> ["a", ""]: a trailing slash is a different resource (404).
        let segments = parts.count == 1 && parts.first == "" ? [] : Array(parts)
        var allowed: [String] = []
        var matchedTemplate: String?
        for route in routes {
            guard let params = Self.bind(route.segments, segments) else { continue }
            matchedTemplate = matchedTemplate ?? route.template
            if route.method == method || (method == "HEAD" && route.method == "GET") {
                return .found(handler: route.handler, params: params, route: route.template, immediate: route.immediate)
            }
            if !allowed.contains(route.method) { allowed.append(route.method) }
            if route.method == "GET" && !allowed.contains("HEAD") { allowed.append("HEAD") }
        }
        if let template = matchedTemplate { return .methodNotAllowed(allow: allowed, route: template) }
        return .notFound
    }

    private static func bind(_ pattern: [Segment], _ path: [Substring]) -> [String: String]? {
        guard pattern.count == path.count else { return nil }
        var params: [String: String] = [:]
        for (p, s) in zip(pattern, path) {
            switch p {
            case .literal(let l): if l != s { return nil }
            case .param(let name):
                if s.isEmpty { return nil }
                params[name] = String(s)
            }
        }
        return params
    }
}
