import Dispatch
import Foundation
import HTTPCore
import ImageCodecs
import Jobs
import Logging
import StylePipeline

/// The style library endpoints: register, list, read, delete.
extension API {
    func styleJSON(_ s: StyleRecord) -> JSONValue {
        let codes = s.derived.keys.filter { $0.hasPrefix("code:") }.map { String($0.dropFirst(5)) }.sorted()
        return .object([
            ("id", .string(s.id)),
            ("name", .optional(s.name)),
            ("content_type", .string(s.contentType)),
            ("width", s.width.map(JSONValue.int) ?? .null),
            ("height", s.height.map(JSONValue.int) ?? .null),
            ("size", s.imageSize.map(JSONValue.int) ?? .null),
            ("sha256", .optional(s.imageSHA256)),
            ("created_at", .string(JobsJSON.format(s.createdAt))),
            ("url", .string("/v1/styles/\(s.id)")),
            ("cached_codes", .array(codes.map(JSONValue.string))),
        ])
    }

    func createStyle(_ ctx: RequestContext) async throws -> HTTPResponse {
        if draining { throw APIError(503, "The server is shutting down.", headers: ["Retry-After": "5"]) }
        let request = ctx.request
        let owner = owner(ctx.head)
        return try await Self.offload { [self] in
            let parts = try parseForm(request, maxParts: 8)
            var consumed = false
            defer { if !consumed { MultipartParser.removeSpoolFiles(parts) } }
            var image: MultipartPart?
            var name: String?
            for part in parts {
                switch part.name {
                case "style":
                    guard image == nil else { throw APIError(400, "Send exactly one 'style' file.") }
                    image = part
                case "name":
                    guard name == nil else { throw APIError(400, "Field 'name' is given more than once.") }
                    name = try Self.text(part, limit: 800, maxCharacters: 200)
                default:
                    throw APIError(400, "Unknown field '\(part.name)'; expected: style, name.")
                }
            }
            guard let image else { throw APIError(400, "The 'style' file is missing (curl -F style=@painting.jpg).") }
            let info = try ImageCheck.probe(image.body, field: "style", maxPixels: config.maxPixels, maxSize: nil)
            guard info.width >= Stylizer.minimumSide, info.height >= Stylizer.minimumSide else {
                throw APIError(400, "style: \(info.width)x\(info.height) is too small; both sides must be at least \(Stylizer.minimumSide) pixels.")
            }
            let meta = StyleMetadata(name: name.flatMap { $0.isEmpty ? nil : $0 }, contentType: info.format.mimeType,
                                     width: info.width, height: info.height, owner: owner)
            let record: StyleRecord
            do {
                record = try registerStyle(image, parts: parts, metadata: meta, consumed: &consumed)
            } catch let e as StyleLibraryFull {
                throw APIError(409, "Cannot register another style: \(e.description); delete some with DELETE /v1/styles/{id}.")
            }
            logger.info("style registered", metadata: ["style": "\(record.id)", "size": "\(info.width)x\(info.height)"])
            return .json(styleJSON(record), status: 201, headers: ["Location": "/v1/styles/\(record.id)"])
        }
    }

    /// Stores the uploaded style image in the library (a spooled upload is moved, not copied).
    func registerStyle(_ image: MultipartPart, parts: [MultipartPart], metadata meta: StyleMetadata,
                               consumed: inout Bool) throws -> StyleRecord {
        switch image.body {
        case .file(let path, _):
            let record = try styles.register(imageFile: URL(fileURLWithPath: path), metadata: meta)
            consumed = true
            MultipartParser.removeSpoolFiles(parts.filter { $0.name != image.name })
            return record
        default:
            return try styles.register(bytes: try image.body.readAll(), metadata: meta)
        }
    }
}
