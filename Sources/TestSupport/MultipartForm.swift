/// multipart/form-data bodies for tests.
public struct MultipartForm {
    public let boundary: String
    private var parts: [(name: String, filename: String?, contentType: String?, data: [UInt8])] = []

    public init(boundary: String = "stylist-test-\(UInt64.random(in: 0...UInt64.max))") { self.boundary = boundary }

    /// Adds a text field.
    public mutating func field(_ name: String, _ value: String) {
        parts.append((name, nil, nil, Array(value.utf8)))
    }

    /// Adds a file part.
    public mutating func file(_ name: String, _ data: [UInt8], filename: String = "image.png", contentType: String = "application/octet-stream") {
        parts.append((name, filename, contentType, data))
    }

    /// The request's Content-Type.
    public var contentType: String { "multipart/form-data; boundary=\(boundary)" }

    /// The encoded body.
    public var body: [UInt8] {
        var out: [UInt8] = []
        for p in parts {
            var head = "--\(boundary)\r\nContent-Disposition: form-data; name=\"\(p.name)\""
            if let f = p.filename { head += "; filename=\"\(f)\"" }
            head += "\r\n"
            if let ct = p.contentType { head += "Content-Type: \(ct)\r\n" }
            head += "\r\n"
            out += Array(head.utf8)
            out += p.data
            out += Array("\r\n".utf8)
        }
        out += Array("--\(boundary)--\r\n".utf8)
        return out
    }
}
