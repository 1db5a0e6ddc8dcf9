#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Dispatch
import Foundation
import Logging

/// Reading: requests are parsed one at a time, the body goes to a sink, and the responder runs once the request is complete.
extension Connection {
    func onReadable() {
        guard phase != .closed else { return }
        if handshaking { continueHandshake(); return }
        if phase == .lingering { discardInput(); return }
        readAvailable()
        if phase != .closed { flush() }
    }

    func readAvailable() {
        for _ in 0..<16 {
            guard phase != .closed, phase != .lingering, !peerEOF else { return }
            if phase == .responding && input.count - inputPos > Self.maxBufferedWhileResponding {
                disableRead()
                return
            }
            let result: IOResult = withUnsafeTemporaryAllocation(byteCount: Self.readChunk, alignment: 16) { buffer in
                let r = transport.read(into: buffer)
                if case .done(let n) = r { input.append(contentsOf: UnsafeRawBufferPointer(rebasing: buffer[0..<n])) }
                return r
            }
            switch result {
            case .done(let n):
                // A short read drained the socket; the next readable edge comes when more arrives.
                // (TLS reads on until it would block: OpenSSL may hold decrypted bytes the socket no
                // longer shows, and no edge would announce them. After a reported FIN, reading goes
                // on to the end of input.)
                let drained = n < Self.readChunk && transport is PlainTransport && !hangUpReported
                if drained { readPending = false }
                if phase == .head && timerKind == .idle { arm(.header, seconds: config.headerTimeout) }
                if phase == .body { bodyDeadline?.progressed(n, now: Self.now()) }
                if phase == .head || phase == .body { process() }
                if drained { return }
            case .wouldBlock:
                if transport is TLSTransport && transport.wantsWrite {
                    readBlockedOnWrite = true
                    enableWrite()
                } else {
                    readPending = false
                }
                return
            case .eof:
                peerEOF = true
                handleEOF()
                return
            case .failed(let why):
                logger.debug("connection read failed", metadata: ["remote": "\(remote)", "error": "\(why)"])
                close()
                return
            }
        }
        // Still more to read after a fair share: carry on later, after what else waits for the queue.
        if readActive && readPending && phase != .closed {
            queue.async { [self] in
                if readActive && readPending && phase != .closed { onReadable() }
            }
        }
    }

    func handleEOF() {
        disableRead()   // nothing more comes: reading never resumes after EOF
        switch phase {
        case .head, .body:
            // Nothing or a partial request: nobody left to answer.
            close()
        case .responding:
            // A half-closed client may still have pipelined requests buffered: serve them, then close.
            if streaming { close() }   // the client left an event stream
        case .lingering:
            close()
        case .closed:
            break
        }
    }

    func discardInput() {
        while true {
            let result: IOResult = withUnsafeTemporaryAllocation(byteCount: Self.readChunk, alignment: 16) { transport.read(into: $0) }
            switch result {
            case .done(let n):
                lingerDiscarded += n
                if lingerDiscarded > 4 * 1024 * 1024 { close(); return }
            case .wouldBlock:
                readPending = false
                return
            case .eof, .failed:
                close()
                return
            }
        }
    }

    /// Runs the parser over buffered input while a request is being received.
    func process() {
        while phase == .head || phase == .body {
            let (event, consumed) = input.withUnsafeBytes { raw in
                parser.next(UnsafeRawBufferPointer(rebasing: raw[inputPos..<raw.count]))
            }
            inputPos += consumed
            guard let event else { break }
            switch event {
            case .head(let h, let framing):
                onHead(h, framing)
            case .body(let bytes):
                do {
                    try sink?.append(bytes)
                } catch {
                    logger.error("cannot spool a request body", metadata: ["error": "\(error)"])
                    sendError(HTTPParserError.storageFailure(error))
                    return
                }
            case .end:
                onRequestComplete()
            case .error(let error):
                logger.info("rejected malformed request", metadata: ["remote": "\(remote)", "status": "\(error.status)", "detail": "\(error.detail)"])
                sendError(error)
                return
            }
        }
        if inputPos == input.count {
            if input.capacity > 4 * Self.readChunk { input = [] } else { input.removeAll(keepingCapacity: true) }
            inputPos = 0
        } else if inputPos > Self.readChunk {
            input.removeSubrange(0..<inputPos)
            inputPos = 0
        }
    }

    func onHead(_ h: HTTPRequestHead, _ framing: HTTPBodyFraming) {
        head = h
        keepAlive = h.isKeepAlive && !server.isShuttingDown
        closeAfterResponse = !keepAlive
        phase = .body
        if let refusal = server.responder.preflight(h) {
            if framing != .none {
                closeAfterResponse = true   // the body is never read
            } else {
                let (event, _) = parser.next(UnsafeRawBufferPointer(start: nil, count: 0))
                assert(event == .end)
            }
            phase = .responding
            cancelTimer()
            startResponse(refusal, for: h)
            return
        }
        guard framing != .none else { return }   // `.end` follows at once
        let expected: Int?
        if case .length(let n) = framing { expected = n } else { expected = nil }
        do {
            sink = try BodySink(threshold: config.bodyMemoryThreshold, directory: config.spoolDirectory, expectedLength: expected)
        } catch {
            logger.error("cannot create a spool file", metadata: ["error": "\(error)", "directory": "\(config.spoolDirectory)"])
            sendError(HTTPParserError.storageFailure(error))
            return
        }
        if h.version == .http1_1, let expect = h.headers["Expect"],
           expect.trimmingCharacters(in: .whitespaces).lowercased() == "100-continue" {
            enqueue(Array("HTTP/1.1 100 Continue\r\n\r\n".utf8))
            flush()
        }
        // One deadline check a second at most: bytes arriving do not push it back.
        bodyDeadline = TransferDeadline(stallSeconds: config.bodyTimeout, minBytesPerSecond: config.minBodyBytesPerSecond, now: Self.now())
        arm(.body, seconds: min(1, config.bodyTimeout))
    }

    func onRequestComplete() {
        guard let h = head else { return }
        cancelTimer()
        phase = .responding
        let body = sink?.finish() ?? .empty
        if case .file(let path, _) = body { requestSpoolPath = path }
        sink = nil
        let request = HTTPRequest(head: h, body: body, remoteAddress: remote)
        let responder = server.responder
        // A request that needs no waiting is answered here, on the connection's queue: no task to
        // start and no hop between threads and back.
        if let response = responder.respondImmediately(to: request) {
            startResponse(response, for: h)
            return
        }
        responderRunning = true
        server.connectionBecameBusy(self)
        responderTask = Task {
            let response = await responder.respond(to: request)
            self.queue.async {
                self.responderRunning = false
                self.responderTask = nil
                self.startResponse(response, for: h)
            }
        }
    }

    /// A server-generated error: problem+json, then close.
    func sendError(_ error: HTTPParserError) {
        server.responder.serverRejected(status: error.status, detail: error.detail, head: head, remoteAddress: remote)
        keepAlive = false
        closeAfterResponse = true
        sink?.discard()
        sink = nil
        phase = .responding
        cancelTimer()
        startResponse(error.response, for: head)
    }
}
