// libFuzzer target for the multipart/form-data parser (built only with STYLIST_FUZZ=1; see FUZZING.md).
//
// Input layout: byte 0 = flags (bits 0-2: number of split points k, bit 3: small limits),
// then k little-endian UInt16 split offsets into the body, then the Content-Type header value
// up to the first LF (at most 200 bytes), then the body. Parts stay in memory (the memory
// threshold is above any input). Invariants checked:
//   - no trap (Swift runtime checks, ASan);
//   - `MultipartParser.parse` on the whole body and a `MultipartStreamParser` fed the body split
//     at the chosen points agree (same parts, or the same error);
//   - the parts respect maxParts and maxPartBytes; names and bodies are what a part can hold.
import HTTPCore

@inline(never)
func check(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String) {
    if !condition() { fatalError("invariant violated: \(message())") }
}

struct PartSummary: Equatable {
    var name: String
    var filename: String?
    var contentType: String?
    var headers: HTTPHeaders
    var body: HTTPBody
}

enum Outcome: Equatable {
    case parts([PartSummary])
    case error(MultipartError)
}

func summarize(_ parts: [MultipartPart]) -> [PartSummary] {
    parts.map { PartSummary(name: $0.name, filename: $0.filename, contentType: $0.contentType, headers: $0.headers, body: $0.body) }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    guard size >= 1 else { return 0 }
    let input = UnsafeBufferPointer(start: data, count: size)
    let flags = input[0]
    let k = Int(flags & 7)
    let small = flags & 8 != 0
    let maxPartBytes = small ? 64 : 1 << 20
    let maxParts = small ? 3 : 64
    guard size >= 1 + 2 * k else { return 0 }
    let rest = Array(input[(1 + 2 * k)...])
    guard let lf = rest.prefix(201).firstIndex(of: 0x0A) else { return 0 }
    let contentType = String(decoding: rest[..<lf], as: UTF8.self)
    let body = Array(rest[(lf + 1)...])
    var splits: [Int] = []
    for j in 0..<k {
        let v = Int(input[1 + 2 * j]) | Int(input[2 + 2 * j]) << 8
        splits.append(v % (body.count + 1))
    }
    splits.sort()

    // Whole body through the public entry point.
    let whole: Outcome
    do {
        let parts = try MultipartParser.parse(body: body.isEmpty ? .empty : .bytes(body), contentType: contentType,
                                              maxPartBytes: maxPartBytes, maxParts: maxParts,
                                              spoolDirectory: "/nonexistent-stylist-fuzz", memoryThreshold: Int.max)
        whole = .parts(summarize(parts))
    } catch let e as MultipartError {
        whole = .error(e)
    } catch {
        fatalError("non-multipart error \(error)")
    }

    // The same body split at the chosen points through the streaming parser.
    let boundary: String
    do {
        boundary = try MultipartParser.boundary(fromContentType: contentType)
    } catch let e as MultipartError {
        check(whole == .error(e), "boundary error \(e) but parse gave \(whole)")
        return 0
    } catch {
        fatalError("non-multipart error \(error)")
    }
    var stream = MultipartStreamParser(boundary: boundary, maxPartBytes: maxPartBytes, maxParts: maxParts,
                                       memoryThreshold: Int.max, spoolDirectory: "/nonexistent-stylist-fuzz")
    let split: Outcome
    do {
        var start = 0
        try body.withUnsafeBytes { all in
            for end in splits + [body.count] {
                try stream.feed(UnsafeRawBufferPointer(rebasing: all[start..<end]))
                start = end
            }
        }
        split = .parts(summarize(try stream.finish()))
    } catch let e as MultipartError {
        stream.discard()
        split = .error(e)
    } catch {
        fatalError("non-multipart error \(error)")
    }
    check(split == whole, "split \(splits) gives \(split), whole body gives \(whole)")

    if case .parts(let parts) = whole {
        check(parts.count <= maxParts, "\(parts.count) parts, limit \(maxParts)")
        var total = 0
        for p in parts {
            check(p.body.count <= maxPartBytes, "part of \(p.body.count) bytes, limit \(maxPartBytes)")
            if case .file = p.body { check(false, "a part was spooled despite the memory threshold") }
            total += p.body.count
        }
        check(total <= body.count, "parts hold \(total) bytes of a \(body.count)-byte body")
    }
    return 0
}
