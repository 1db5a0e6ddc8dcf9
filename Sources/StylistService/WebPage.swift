import Foundation
import HTTPCore
import ImageCodecs

/// The browser page (issue 14): `GET /`, `/app.js`, `/app.css`, static files from this target's
/// resources (`Resources/web/`), served without an API key (the page asks for one and sends it
/// as `Authorization: Bearer` on its API calls) and with a strict Content-Security-Policy: no
/// inline script or style, no request leaves the origin. Also `GET /v1/styles/{id}/image?size=N`,
/// the gallery's thumbnails (that one is an API route and needs the key like the others).
enum WebPage {
    /// The page's paths, open without an API key.
    static let paths: Set<String> = ["/", "/app.js", "/app.css"]

    static let contentSecurityPolicy = "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; "
        + "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

    /// (path, file in Resources/web, content type)
    static let files: [(path: String, file: String, type: String)] = [
        ("/", "index.html", "text/html; charset=utf-8"),
        ("/app.js", "app.js", "text/javascript; charset=utf-8"),
        ("/app.css", "app.css", "text/css; charset=utf-8"),
    ]

    /// The file's bytes from the resource bundle next to the executable (or the test bundle),
    /// else from a checkout (`Sources/StylistService/Resources/web/`); nil when neither has it.
    static func load(_ file: String) -> [UInt8]? {
        var candidates = OpenAPIDocument.candidates().filter { $0.hasSuffix("/Resources/openapi.yaml") }
            .map { String($0.dropLast("openapi.yaml".count)) + "web/" + file }
        candidates.append("Sources/StylistService/Resources/web/" + file)
        for path in candidates {
            if let data = FileManager.default.contents(atPath: path) { return [UInt8](data) }
        }
        return nil
    }

    static func response(_ body: [UInt8]?, type: String, path: String) throws -> HTTPResponse {
        guard let body else { throw APIError(404, "The web page's file for \(path) is not installed next to this binary.") }
        return HTTPResponse(status: 200, headers: [
            "Content-Type": type,
            "Content-Security-Policy": contentSecurityPolicy,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            "X-Frame-Options": "DENY",
            "Cache-Control": "no-cache",
        ], body: .bytes(body))
    }
}

extension API {
    /// Adds the page's routes and the style thumbnail route to the router (called from `makeRouter`).
    func addWebPageRoutes(_ r: inout Router) {
        for f in WebPage.files {
            let body = WebPage.load(f.file)
            r.add("GET", f.path) { _ in try WebPage.response(body, type: f.type, path: f.path) }
        }
        r.add("GET", "/v1/styles/{id}/image") { [unowned self] in try await styleImage($0) }
    }

    /// `GET /v1/styles/{id}/image?size=N`: the registered style image, downscaled so its longer
    /// side is at most N pixels (default 256, 16-1024; never enlarged), as JPEG.
    private func styleImage(_ ctx: RequestContext) async throws -> HTTPResponse {
        let id = ctx.param("id")
        guard let s = try styles.get(id), s.owner == owner(ctx.head) else { throw APIError(404, "No style \(id).") }
        var size = 256
        if let q = ctx.head.queryValue("size") {
            guard Self.isJSONNumber(q, integer: true), let n = Int(q), (16...1024).contains(n) else {
                throw APIError(400, "size must be an integer from 16 to 1024, got '\(q)'.")
            }
            size = n
        }
        let etag = "\"\(s.imageSHA256 ?? s.id)-\(size)\""
        let headers: HTTPHeaders = ["ETag": etag, "Cache-Control": "private, max-age=86400"]
        if let inm = ctx.head.headers.values("If-None-Match").first, Self.etagMatches(inm, etag) {
            return HTTPResponse(status: 304, headers: headers)
        }
        let styles = self.styles, maxPixels = config.maxPixels, side = size
        let bytes: [UInt8] = try await Self.offload {
            guard let url = try styles.imageURL(id) else { throw APIError(404, "No style \(id).") }
            let image: PlanarImage
            do {
                image = try ImageDecoder.decode(contentsOf: url.path, maxPixels: maxPixels)
            } catch is ImageCodecError {
                // The codec's message may name the stored file: the client gets none of it.
                throw APIError(422, "The stored style image cannot be decoded.")
            }
            return try ImageEncoder.jpeg(image.resized(toFit: side, filter: .area), quality: 85)
        }
        var h = headers
        h["Content-Type"] = "image/jpeg"
        return HTTPResponse(status: 200, headers: h, body: .bytes(bytes))
    }
}
