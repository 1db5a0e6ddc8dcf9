import Foundation

/// One server-sent event.
public struct ServerSentEvent: Equatable {
    public var id: String?
    public var event: String?
    public var data: String
    /// `data` parsed as a JSON object.
    public var json: [String: Any]? { (try? JSONSerialization.jsonObject(with: Data(data.utf8))) as? [String: Any] }
    public static func == (a: ServerSentEvent, b: ServerSentEvent) -> Bool { a.id == b.id && a.event == b.event && a.data == b.data }
}

/// Well-formed requests, forms and event streams on top of the raw connection.
extension HTTPClient {
    /// The request bytes (Host, Content-Length for a body, default headers added).
    public func encode(_ method: String, _ target: String, headers: [(String, String)] = [], body: [UInt8]? = nil) -> [UInt8] {
        var text = "\(method) \(target) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\n"
        for (n, v) in defaultHeaders + headers { text += "\(n): \(v)\r\n" }
        if let body, !headers.contains(where: { $0.0.lowercased() == "transfer-encoding" }) {
            text += "Content-Length: \(body.count)\r\n"
        }
        text += "\r\n"
        return Array(text.utf8) + (body ?? [])
    }

    /// Sends one request and reads its response on this connection.
    public func request(_ method: String, _ target: String, headers: [(String, String)] = [], body: [UInt8]? = nil) throws -> ClientResponse {
        try send(encode(method, target, headers: headers, body: body))
        return try readResponse(forHEAD: method == "HEAD")
    }

    public func get(_ target: String, headers: [(String, String)] = []) throws -> ClientResponse {
        try request("GET", target, headers: headers)
    }

    public func delete(_ target: String, headers: [(String, String)] = []) throws -> ClientResponse {
        try request("DELETE", target, headers: headers)
    }

    /// POSTs a multipart form.
    public func post(_ target: String, form: MultipartForm, headers: [(String, String)] = []) throws -> ClientResponse {
        try request("POST", target, headers: [("Content-Type", form.contentType)] + headers, body: form.body)
    }

    /// POSTs a multipart form with `Transfer-Encoding: chunked`, in chunks of `chunkSize` bytes.
    public func postChunked(_ target: String, form: MultipartForm, chunkSize: Int = 4096, headers: [(String, String)] = []) throws -> ClientResponse {
        try send(encode("POST", target, headers: [("Content-Type", form.contentType), ("Transfer-Encoding", "chunked")] + headers))
        let body = form.body
        var i = 0
        while i < body.count {
            let n = min(chunkSize, body.count - i)
            try send(Array((String(n, radix: 16) + "\r\n").utf8) + body[i..<(i + n)] + [0x0D, 0x0A])
            i += n
        }
        try send("0\r\n\r\n")
        return try readResponse()
    }

    /// POSTs with `Expect: 100-continue`: sends the head, waits for the interim answer (or a final
    /// refusal), then the body. Returns the interim status (nil if none came) and the final response.
    public func postExpectingContinue(_ target: String, form: MultipartForm, headers: [(String, String)] = []) throws -> (interim: Int?, response: ClientResponse, secondsToContinue: Double) {
        let body = form.body
        let start = Date()
        try send(encode("POST", target, headers: [("Content-Type", form.contentType), ("Content-Length", String(body.count)),
                                                   ("Expect", "100-continue")] + headers, body: nil))
        let first = try readResponse(allowInterim: true)
        let waited = Date().timeIntervalSince(start)
        guard first.status == 100 else { return (nil, first, waited) }
        try send(body)
        return (100, try readResponse(), waited)
    }

    /// Sends `GET target` with `Accept: text/event-stream` and reads the response head.
    public func openEvents(_ target: String) throws -> (Int, ResponseHeaders) {
        try send(encode("GET", target, headers: [("Accept", "text/event-stream")]))
        return try readHead()
    }

    /// The next event of an open chunked SSE response; nil when the stream ended. Comments and
    /// `retry:` lines are skipped.
    public func nextEvent() throws -> ServerSentEvent? {
        while true {
            if let range = sseText.range(of: "\n\n") {
                let block = String(sseText[..<range.lowerBound])
                sseText.removeSubrange(..<range.upperBound)
                if let event = Self.parseEvent(block) { return event }
                continue
            }
            if sseEnded { return nil }
            guard let chunk = try readChunk() else { sseEnded = true; continue }
            sseText += String(decoding: chunk, as: UTF8.self)
        }
    }

    /// One event block's fields; nil for a block without data (a comment or `retry:` only).
    static func parseEvent(_ block: String) -> ServerSentEvent? {
        var event = ServerSentEvent(id: nil, event: nil, data: "")
        var dataLines: [String] = []
        for line in block.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix(":") { continue }
            let (field, value): (Substring, Substring)
            if let colon = line.firstIndex(of: ":") {
                field = line[..<colon]
                var v = line[line.index(after: colon)...]
                if v.hasPrefix(" ") { v = v.dropFirst() }
                value = v
            } else {
                field = line
                value = ""
            }
            switch field {
            case "id": event.id = String(value)
            case "event": event.event = String(value)
            case "data": dataLines.append(String(value))
            default: break
            }
        }
        if dataLines.isEmpty { return nil }
        event.data = dataLines.joined(separator: "\n")
        return event
    }
}
