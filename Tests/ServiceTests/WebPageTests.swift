import Foundation
import ImageCodecs
import StylistService
import StylistTesting
import XCTest

/// The browser page (GET /, /app.js, /app.css) and the style thumbnails it shows. The page
/// itself is exercised in a real browser by `.ci/browser` (.ci/browser_test.py).
final class WebPageTests: ServiceTestCase {
    func testPageAndAssetsAreServedWithAStrictCSPAndWithoutAnAPIKey() throws {
        let server = try start { $0.apiKeys = ["s3cret"] }
        let c = try HTTPClient(port: server.port)   // no Authorization header
        for (path, type, marker) in [("/", "text/html; charset=utf-8", "<script src=\"/app.js\""),
                                     ("/app.js", "text/javascript; charset=utf-8", "/v1/jobs"),
                                     ("/app.css", "text/css; charset=utf-8", ".panels")] {
            let r = try c.get(path)
            XCTAssertEqual(r.status, 200, "\(path): \(r)")
            XCTAssertEqual(r.headers["Content-Type"], type, path)
            let csp = try XCTUnwrap(r.headers["Content-Security-Policy"], path)
            for directive in ["default-src 'self'", "script-src 'self'", "style-src 'self'", "connect-src 'self'",
                              "object-src 'none'", "frame-ancestors 'none'"] {
                XCTAssertTrue(csp.contains(directive), "\(path): CSP lacks \(directive): \(csp)")
            }
            XCTAssertFalse(csp.contains("unsafe"), csp)
            XCTAssertEqual(r.headers["X-Content-Type-Options"], "nosniff")
            XCTAssertTrue(r.text.contains(marker), "\(path) lacks \(marker)")
        }
        // No inline script or style, nothing loaded from elsewhere.
        let html = try c.get("/").text
        XCTAssertFalse(html.contains("<style"))
        XCTAssertFalse(html.contains("style=\""))
        XCTAssertFalse(html.range(of: "<script>") != nil)
        XCTAssertFalse(html.contains("http://") || html.contains("https://"))
        // The API behind it still needs the key.
        assertProblem(try c.get("/v1/models"), 401)
        assertProblem(try c.get("/v1/styles/AAAAAAAAAAAAAAAAAAAAAA/image"), 401)
    }

    func testStyleThumbnail() throws {
        let server = try start()
        let c = try server.client()
        let style = try Golden.style(Golden.microast)
        let original = try ImageDecoder.decode(style)
        var form = MultipartForm()
        form.file("style", style, filename: "matisse.png", contentType: "image/png")
        let sid = try XCTUnwrap(try c.post("/v1/styles", form: form).json?["id"] as? String)

        let r = try c.get("/v1/styles/\(sid)/image?size=32")
        XCTAssertEqual(r.status, 200, r.description)
        XCTAssertEqual(r.headers["Content-Type"], "image/jpeg")
        let thumb = try ImageDecoder.decode(r.body)
        let expected = PlanarImage.fittingSize(width: original.width, height: original.height, maxSide: 32)
        XCTAssertEqual([thumb.width, thumb.height], [expected.width, expected.height])
        XCTAssertEqual(max(thumb.width, thumb.height), 32)
        // Never enlarged: the default size (256) of a 64 px image is the image's own size.
        let full = try ImageDecoder.decode(try c.get("/v1/styles/\(sid)/image").body)
        XCTAssertEqual([full.width, full.height], [original.width, original.height])
        // Revalidation.
        let etag = try XCTUnwrap(r.headers["ETag"])
        XCTAssertEqual(try c.get("/v1/styles/\(sid)/image?size=32", headers: [("If-None-Match", etag)]).status, 304)
        XCTAssertEqual(try c.get("/v1/styles/\(sid)/image?size=48", headers: [("If-None-Match", etag)]).status, 200)
        // Bad sizes and unknown styles.
        for bad in ["0", "15", "1025", "abc", "32.5", "-32", "+32"] {
            assertProblem(try c.get("/v1/styles/\(sid)/image?size=\(bad)"), 400, "size")
        }
        assertProblem(try c.get("/v1/styles/AAAAAAAAAAAAAAAAAAAAAA/image?size=32"), 404)
    }
}
