// libFuzzer target for HTTPRequestParser (built only with STYLIST_FUZZ=1; see FUZZING.md).
//
// Input layout: byte 0 = flags (bits 0-2: number of split points k, bit 3: small limits),
// then k little-endian UInt16 split offsets (taken modulo the payload length + 1), then the
// payload fed to the parser. Invariants checked:
//   - no trap (Swift runtime checks, ASan);
//   - `next` never reports more bytes consumed than it was given, and when it returns no
//     event it has consumed everything (so the caller's loop terminates);
//   - a bounded number of `next` calls per chunk (termination);
//   - the events are the same (body events merged) for the whole payload fed at once with
//     `feed` and for the payload split at the chosen points, fed with `next`;
//   - body bytes of one request never exceed maxBodyBytes; nothing follows an error.
import HTTPCore

@inline(never)
func check(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String) {
    if !condition() { fatalError("invariant violated: \(message())") }
}

/// Merges consecutive body events so that differently split inputs compare equal.
func normalize(_ events: [HTTPParserEvent]) -> [HTTPParserEvent] {
    var out: [HTTPParserEvent] = []
    for e in events {
        if case .body(let b) = e, case .body(let prev)? = out.last {
            out[out.count - 1] = .body(prev + b)
        } else if case .body(let b) = e, b.isEmpty {
            continue
        } else {
            out.append(e)
        }
    }
    return out
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    guard size >= 1 else { return 0 }
    let input = UnsafeBufferPointer(start: data, count: size)
    let flags = input[0]
    let k = Int(flags & 7)
    let limits = flags & 8 != 0
        ? HTTPParserLimits(maxHeaderBytes: 256, maxHeaderCount: 8, maxBodyBytes: 1024, maxChunkLineBytes: 32)
        : HTTPParserLimits()
    guard size >= 1 + 2 * k else { return 0 }
    let payload = Array(input[(1 + 2 * k)...])
    var splits: [Int] = []
    for j in 0..<k {
        let v = Int(input[1 + 2 * j]) | Int(input[2 + 2 * j]) << 8
        splits.append(v % (payload.count + 1))
    }
    splits.sort()

    // Whole input at once through `feed`.
    var whole = HTTPRequestParser(limits: limits)
    let expected = normalize(whole.feed(payload))

    // Split input through `next`, checking consumption on every call.
    var pieces = HTTPRequestParser(limits: limits)
    var events: [HTTPParserEvent] = []
    var failed = false
    var start = 0
    payload.withUnsafeBytes { all in
        for end in splits + [payload.count] {
            var chunk = UnsafeRawBufferPointer(rebasing: all[start..<end])
            start = end
            let chunkBytes = chunk.count
            var calls = 0
            while true {
                calls += 1
                // Each call consumes a byte or yields an event, and an event without a consumed byte
                // (.end after a body) is followed by one that consumes; 2 * (n + 2) is generous.
                check(calls <= 2 * (chunkBytes + 2), "parser does not terminate: \(calls) calls on a \(chunkBytes)-byte chunk")
                let available = chunk.count
                let (event, consumed) = pieces.next(chunk)
                check(consumed >= 0 && consumed <= available, "consumed \(consumed) of \(available) bytes")
                chunk = UnsafeRawBufferPointer(rebasing: chunk[consumed...])
                guard let event else {
                    check(chunk.isEmpty, "no event but \(chunk.count) bytes left unconsumed")
                    break
                }
                check(!failed, "event \(event) after an error")
                if case .error = event { failed = true; check(pieces.hasFailed, "error event but parser not failed") }
                events.append(event)
            }
        }
    }
    let got = normalize(events)
    check(got == expected, "split \(splits) gives \(got), whole input gives \(expected)")

    // Per-request body size within the limit; heads and ends alternate properly.
    var inRequest = false
    var bodyBytes = 0
    for e in got {
        switch e {
        case .head:
            check(!inRequest, "head inside a request"); inRequest = true; bodyBytes = 0
        case .body(let b):
            check(inRequest, "body outside a request"); bodyBytes += b.count
            check(bodyBytes <= limits.maxBodyBytes, "body of \(bodyBytes) bytes over the limit \(limits.maxBodyBytes)")
        case .end:
            check(inRequest, "end outside a request"); inRequest = false
        case .error(let err):
            check([400, 411, 413, 431, 501, 505].contains(err.status), "unexpected status \(err.status)")
        }
    }
    return 0
}
