import Engine
import Foundation
import ImageCodecs

/// A job's bytes in and out: decoding inputs (each once, side by side, straight to the job's size)
/// and encoding the result.
extension Stylizer {
    /// Decodes image bytes, mapping codec errors to pipeline errors that name the input.
    public static func decode(_ bytes: [UInt8], input: String, maxPixels: Int = ImageDecoder.defaultMaxPixels) throws -> PlanarImage {
        do {
            return try ImageDecoder.decode(bytes, maxPixels: maxPixels)
        } catch let e as ImageCodecError {
            throw PipelineError.from(e, input: input)
        }
    }

    /// Decodes image bytes for a job at `maxSize`: the image `fit(decode(bytes), maxSize)` would give,
    /// at the same size, but a JPEG much larger than `maxSize` is decoded at a reduced scale first
    /// (`ImageDecoder.decode(fittingTo:)`), so a 12-megapixel photo for a 512 job costs a fraction
    /// of a full decode.
    public static func decode(_ bytes: [UInt8], input: String, maxPixels: Int = ImageDecoder.defaultMaxPixels,
                              fittingTo maxSize: Int) throws -> PlanarImage {
        do {
            return try ImageDecoder.decode(bytes, maxPixels: maxPixels, fittingTo: maxSize)
        } catch let e as ImageCodecError {
            throw PipelineError.from(e, input: input)
        }
    }

    /// `decode(_:input:maxPixels:fittingTo:)` of every input at once, one input per core (a job's
    /// content and style decode side by side while the engine is idle). Results are in input order;
    /// when several inputs fail, the error of the first one in that order is thrown.
    public static func decodeAll(_ inputs: [(bytes: [UInt8], input: String)], maxPixels: Int = ImageDecoder.defaultMaxPixels,
                                 fittingTo maxSize: Int) throws -> [PlanarImage] {
        let results = ResultSlots<PlanarImage>(count: inputs.count)
        DispatchQueue.concurrentPerform(iterations: inputs.count) { i in
            results.set(i, Result { try decode(inputs[i].bytes, input: inputs[i].input, maxPixels: maxPixels, fittingTo: maxSize) })
        }
        return try results.values()
    }

    /// Decodes a mask image straight to its regions (`regionMask`): only a byte per pixel is kept,
    /// not the decoded colour planes (a 4K mask: 8 MB instead of 100 MB through the job).
    public static func decodeMask(_ bytes: [UInt8], input: String = "mask", maxPixels: Int = ImageDecoder.defaultMaxPixels) throws -> RegionMask {
        regionMask(try decode(bytes, input: input, maxPixels: maxPixels))
    }

    /// Encodes a stylization's picture in the requested format (PNG on every core), reading it
    /// straight from the network's output: no cropped copy in between.
    public static func encode(_ result: StylizeResult, options: StylizeOptions) throws -> [UInt8] {
        try result.withRows { rows in
            options.format == .jpeg ? try ImageEncoder.jpeg(rows, quality: options.jpegQuality) : try ImageEncoder.png(rows)
        }
    }
}

/// One result per parallel task, each slot written by exactly one task.
private final class ResultSlots<T>: @unchecked Sendable {
    private var slots: [Result<T, Error>?]
    private let lock = NSLock()

    init(count: Int) { slots = Array(repeating: nil, count: count) }

    func set(_ i: Int, _ result: Result<T, Error>) {
        lock.lock()
        slots[i] = result
        lock.unlock()
    }

    /// The values in order, or the first error in order.
    func values() throws -> [T] {
        try slots.map { try $0!.get() }
    }
}
