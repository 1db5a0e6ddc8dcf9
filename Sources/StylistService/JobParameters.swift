import Foundation
import HTTPCore
import ImageCodecs
import Jobs
import StylePipeline

/// Where one style of a job comes from.
enum StyleSource: Equatable, Sendable {
    /// An uploaded image, stored as the job's input blob of this name (`style0`, `style1`...).
    case upload(String)
    /// A registered style.
    case registered(String)

    var encoded: String {
        switch self {
        case .upload(let blob): return "upload:" + blob
        case .registered(let id): return "style_id:" + id
        }
    }

    init?(encoded: String) {
        if encoded.hasPrefix("upload:") { self = .upload(String(encoded.dropFirst(7))) }
        else if encoded.hasPrefix("style_id:") { self = .registered(String(encoded.dropFirst(9))) }
        else { return nil }
    }
}

/// A job's validated parameters: stored as strings in `JobRecord.parameters`, rendered in the job JSON.
struct JobParameters: Equatable, Sendable {
    var model: String
    var options: StylizeOptions
    var styles: [StyleSource]
    /// Spatial control: the job has a `mask` input blob (exactly two styles).
    var mask = false

    /// The record form.
    var record: [String: String] {
        var p: [String: String] = [
            "model": model,
            "alpha": "\(options.alpha)",
            "preserve_color": options.preserveColor ? "true" : "false",
            "max_size": String(options.maxSize),
            "format": options.format.rawValue,
            "styles": styles.map(\.encoded).joined(separator: ","),
        ]
        if let w = options.styleWeights { p["style_weights"] = w.map { "\($0)" }.joined(separator: ",") }
        if mask { p["mask"] = "true" }
        return p
    }

    /// Reads the record form back (what the executor and `GET /v1/jobs/{id}` use).
    init(record p: [String: String]) throws {
        func bad(_ why: String) -> JobFailure { JobFailure(status: 500, title: "Corrupt job record", detail: why) }
        guard let model = p["model"], let alpha = p["alpha"].flatMap(Float.init), let maxSize = p["max_size"].flatMap(Int.init),
              let format = p["format"].flatMap(ImageFormat.init(rawValue:)), let styles = p["styles"] else {
            throw bad("missing parameters")
        }
        self.model = model
        options = StylizeOptions()
        options.alpha = alpha
        options.maxSize = maxSize
        options.format = format
        options.preserveColor = p["preserve_color"] == "true"
        mask = p["mask"] == "true"
        if let w = p["style_weights"] { options.styleWeights = w.split(separator: ",").compactMap { Float(String($0)) } }
        self.styles = try styles.split(separator: ",").map {
            guard let s = StyleSource(encoded: String($0)) else { throw bad("bad style source \($0)") }
            return s
        }
    }

    init(model: String, options: StylizeOptions, styles: [StyleSource], mask: Bool = false) {
        self.model = model
        self.options = options
        self.styles = styles
        self.mask = mask
    }

    /// The `parameters` object of the job JSON.
    var json: JSONValue {
        .object([
            ("alpha", floatJSON(options.alpha)),
            ("style_weights", options.styleWeights.map { .array($0.map(floatJSON)) } ?? .null),
            ("preserve_color", .bool(options.preserveColor)),
            ("max_size", .int(options.maxSize)),
            ("format", .string(options.format.rawValue)),
            ("styles", .array(styles.map { s in
                switch s {
                case .upload: return .object([("source", "upload")])
                case .registered(let id): return .object([("source", "style_id"), ("style_id", .string(id))])
                }
            })),
            ("mask", .bool(mask)),
        ])
    }
}

/// A Float as the decimal it was written as (0.7, not 0.699999988).
func floatJSON(_ f: Float) -> JSONValue { .double(Double("\(f)") ?? Double(f)) }

/// Header-only checks of an uploaded image: 415 not PNG/JPEG, 422 a corrupt header,
/// 413 over the megapixel limit, 400 too small once resized — all before any pixel is decoded.
enum ImageCheck {
    /// How much of a spooled file is read for the header. A longer header (a large EXIF block,
    /// many PNG chunks before IDAT) is re-read whole: the probe skips those markers and chunks
    /// without inflating or storing them, so that costs one pass over the upload.
    static let headPrefix = 512 * 1024

    static func probe(_ body: HTTPBody, field: String, maxPixels: Int, maxSize: Int?) throws -> ImageInfo {
        let info: ImageInfo
        do {
            info = try probeBytes(body)
        } catch let e as ImageCodecError {
            switch e {
            case .unsupportedFormat(let why):
                throw APIError(415, "\(field): not a PNG or JPEG image (\(why)).")
            case .corrupt(let why):
                throw APIError(422, "\(field): the image header cannot be read (\(why)).")
            case .tooLarge(let w, let h, _):
                throw APIError(413, "\(field): \(w)x\(h) pixels exceeds the limit of \(maxPixels) pixels.")
            }
        }
        if info.width * info.height > maxPixels {
            throw APIError(413, "\(field): \(info.width)x\(info.height) = \(info.width * info.height) pixels exceeds the limit of \(maxPixels) pixels (max_megapixels).")
        }
        if let maxSize {
            let fitted = PlanarImage.fittingSize(width: info.width, height: info.height, maxSide: maxSize)
            if fitted.width < Stylizer.minimumSide || fitted.height < Stylizer.minimumSide {
                throw APIError(400, "\(field): \(info.width)x\(info.height) becomes \(fitted.width)x\(fitted.height) at max_size \(maxSize); both sides must be at least \(Stylizer.minimumSide) pixels.")
            }
        }
        return info
    }

    private static func probeBytes(_ body: HTTPBody) throws -> ImageInfo {
        switch body {
        case .empty:
            throw ImageCodecError.unsupportedFormat("the file is empty")
        case .bytes(let b):
            return try ImageDecoder.probe(b)
        case .file(let path, let length):
            let head = try readPrefix(path, headPrefix)
            do {
                return try ImageDecoder.probe(head)
            } catch ImageCodecError.corrupt(let why) {
                guard length > head.count else { throw ImageCodecError.corrupt(why) }
                return try ImageDecoder.probe(try body.readAll())
            }
        }
    }

    private static func readPrefix(_ path: String, _ n: Int) throws -> [UInt8] {
        guard let h = FileHandle(forReadingAtPath: path) else { throw ImageCodecError.corrupt("the upload cannot be read") }
        defer { try? h.close() }
        return [UInt8]((try? h.read(upToCount: n)) ?? Data())
    }
}
