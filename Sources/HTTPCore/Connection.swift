#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Dispatch
import Foundation
import Logging

/// A request body being received: in memory up to a threshold, then spooled to a file.
final class BodySink {
    let threshold: Int
    let directory: String
    var memory: [UInt8] = []
    var fd: Int32 = -1
    var path: String?
    var length = 0

    init(threshold: Int, directory: String, expectedLength: Int?) throws {
        self.threshold = threshold
        self.directory = directory
        if let expected = expectedLength {
            if expected > threshold { try spool() } else { memory.reserveCapacity(expected) }
        }
    }

    private func spool() throws {
        let (fd, path) = try createSpoolFile(directory: directory, prefix: "stylist-body-")
        self.fd = fd
        self.path = path
        if !memory.isEmpty {
            try writeFully(fd: fd, memory[...])
            memory = []
        }
    }

    func append(_ bytes: [UInt8]) throws {
        length += bytes.count
        if fd < 0 && memory.count + bytes.count > threshold { try spool() }
        if fd >= 0 { try writeFully(fd: fd, bytes[...]) } else { memory.append(contentsOf: bytes) }
    }

    /// The finished body; a spooled file is closed and handed over (its path is still `path`).
    func finish() -> HTTPBody {
        if fd >= 0 {
            Glibc.close(fd)
            fd = -1
            return .file(path: path!, length: length)
        }
        return memory.isEmpty ? .empty : .bytes(memory)
    }

    /// Closes and deletes a spool file.
    func discard() {
        if fd >= 0 { Glibc.close(fd); fd = -1 }
        if let path { unlink(path) }
        path = nil
        memory = []
    }
}

/// One client connection: reads and parses requests one at a time, runs the responder, writes responses in
/// order. All state is confined to `queue`.
final class Connection {
    enum Phase { case head, body, responding, lingering, closed }
    enum TimerKind { case none, header, body, idle, write, linger }

    let fd: Int32
    let transport: Transport
    let server: HTTPServer
    let remote: String
    let refuse: Bool
    /// The server's number for this connection (its key in the server's tables).
    let serial: UInt64
    let queue: DispatchQueue
    let config: HTTPServerConfiguration
    var logger: Logger { server.logger }

    private var readSource: DispatchSourceRead!
    private var writeSource: DispatchSourceWrite!
    private var timer: DispatchSourceTimer!
    private var readActive = false
    private var writeActive = false
    private var pendingCancels = 0
    private var timerKind = TimerKind.none
    private var timerActivated = false

    private var parser: HTTPRequestParser
    private var input: [UInt8] = []
    private var inputPos = 0
    private var output: [[UInt8]] = []
    private var outputPos = 0
    private var outputBytes = 0

    private(set) var phase = Phase.head
    private var handshaking: Bool
    private var readBlockedOnWrite = false
    private var peerEOF = false
    private var requestsServed = 0
    private var lingerDiscarded = 0

    // The request in progress.
    private var head: HTTPRequestHead?
    private var keepAlive = true
    private var sink: BodySink?
    private var closeAfterResponse = false
    private var responderRunning = false
    private var responseComplete = false
    private var requestSpoolPath: String?
    private var fileBody: (fd: Int32, remaining: Int)?
    private var streaming = false
    private var streamTask: Task<Void, Never>?
    private var drainWaiters: [CheckedContinuation<Bool, Never>] = []
    private var responderTask: Task<Void, Never>?
    // The request body's and the response's deadlines (stall and minimum rate).
    private var bodyDeadline: TransferDeadline?
    private var responseDeadline: TransferDeadline?
    private static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

    private static let readChunk = 64 * 1024
    private static let maxBufferedWhileResponding = 256 * 1024
    private static let streamHighWater = 256 * 1024

    init(fd: Int32, transport: Transport, server: HTTPServer, remote: String, refuse: Bool, serial: UInt64) {
        self.fd = fd
        self.serial = serial
        self.transport = transport
        self.server = server
        self.remote = remote
        self.refuse = refuse
        self.config = server.configuration
        self.queue = DispatchQueue(label: "stylist.http.connection", target: .global(qos: .userInitiated))
        self.parser = HTTPRequestParser(limits: server.configuration.parserLimits)
        self.handshaking = transport is TLSTransport
        readSource = DispatchSource.makeReadSource(fileDescriptor: fd, queue: queue)
        writeSource = DispatchSource.makeWriteSource(fileDescriptor: fd, queue: queue)
        timer = DispatchSource.makeTimerSource(queue: queue)
        readSource.setEventHandler { [unowned self] in onReadable() }
        writeSource.setEventHandler { [unowned self] in onWritable() }
        timer.setEventHandler { [unowned self] in onTimer() }
        pendingCancels = 2
        let cancelled: () -> Void = { [self] in
            pendingCancels -= 1
            if pendingCancels == 0 {
                Glibc.close(fd)
                transport.free()
                server.connectionDidClose(self)
            }
        }
        readSource.setCancelHandler(handler: cancelled)
        writeSource.setCancelHandler(handler: cancelled)
    }

    // MARK: - Lifecycle

    func start() {
        queue.async { [self] in
            guard phase != .closed else { return }
            timer.schedule(deadline: .distantFuture)
            timer.resume()
            timerActivated = true
            // Over the limit on TLS: closed before any handshake work (the handshake is the costly part).
            if refuse && handshaking { close(); return }
            if refuse {
                arm(.linger, seconds: 5)
            } else {
                arm(.header, seconds: config.headerTimeout)
            }
            if handshaking {
                enableRead()
                continueHandshake()
            } else {
                ready()
            }
        }
    }

    /// Transport ready (TLS handshake done).
    private func ready() {
        if refuse {
            keepAlive = false
            closeAfterResponse = true
            phase = .responding
            var response = HTTPResponse.problem(status: 503, title: "Service Unavailable",
                                                detail: "The server has too many open connections; retry shortly.")
            response.headers["Retry-After"] = "1"
            server.responder.serverRejected(status: 503, detail: "connection limit reached", head: nil, remoteAddress: remote)
            startResponse(response, for: nil)
            return
        }
        enableRead()
        onReadable()
    }

    private func continueHandshake() {
        switch transport.handshake() {
        case .done:
            handshaking = false
            disableWrite()
            ready()
        case .wouldBlock:
            if transport.wantsWrite { enableWrite() } else { disableWrite() }
        case .eof, .failed:
            close()
        }
    }

    /// Graceful shutdown: close if idle, otherwise close after the current response.
    func beginShutdown() {
        guard phase != .closed else { return }
        if phase == .head && parser.isIdle && inputPos == input.count {
            close()
        } else {
            keepAlive = false
            closeAfterResponse = true
        }
    }

    /// Closes at once: cancels sources and any stream, deletes spool files not owned by a running responder.
    func close() {
        guard phase != .closed else { return }
        phase = .closed
        if timerActivated { timer.cancel() } else { timer.resume(); timer.cancel() }
        timerKind = .none
        let waiters = drainWaiters
        drainWaiters = []
        for w in waiters { w.resume(returning: false) }
        streamTask?.cancel()
        streamTask = nil
        responderTask?.cancel()   // a long poll whose client went away stops waiting
        responderTask = nil
        sink?.discard()
        sink = nil
        if !responderRunning { removeRequestSpool() }
        if let fb = fileBody { Glibc.close(fb.fd); fileBody = nil }
        output = []
        input = []
        if !readActive { readSource.resume(); readActive = true }
        if !writeActive { writeSource.resume(); writeActive = true }
        readSource.cancel()
        writeSource.cancel()
    }

    private func removeRequestSpool() {
        if let path = requestSpoolPath { unlink(path) }
        requestSpoolPath = nil
    }

    private func enableRead() { if !readActive && phase != .closed { readActive = true; readSource.resume() } }
    private func disableRead() { if readActive && phase != .closed { readActive = false; readSource.suspend() } }
    private func enableWrite() { if !writeActive && phase != .closed { writeActive = true; writeSource.resume() } }
    private func disableWrite() { if writeActive && phase != .closed { writeActive = false; writeSource.suspend() } }

    private func arm(_ kind: TimerKind, seconds: Double) {
        guard phase != .closed else { return }
        timerKind = kind
        timer.schedule(deadline: .now() + max(0.001, seconds))
    }

    private func cancelTimer() {
        guard phase != .closed else { return }
        timerKind = .none
        timer.schedule(deadline: .distantFuture)
    }

    private func onTimer() {
        guard phase != .closed else { return }
        let kind = timerKind
        timerKind = .none
        switch kind {
        case .none:
            break
        case .header:
            if handshaking || (phase != .head && phase != .body) { close(); return }
            logger.info("request head timeout", metadata: ["remote": "\(remote)"])
            sendError(HTTPParserError(status: 408, detail: "The request head was not received within \(formatSeconds(config.headerTimeout)) seconds."))
        case .body:
            switch bodyDeadline?.verdict(now: Self.now()) ?? .stalled {
            case .stalled:
                logger.info("request body timeout", metadata: ["remote": "\(remote)"])
                sendError(HTTPParserError(status: 408, detail: "The request body stalled for \(formatSeconds(config.bodyTimeout)) seconds."))
            case .tooSlow:
                logger.info("request body too slow", metadata: ["remote": "\(remote)", "bytes": "\(bodyDeadline?.bytes ?? 0)"])
                sendError(HTTPParserError(status: 408, detail: "The request body arrives slower than \(config.minBodyBytesPerSecond) bytes per second."))
            case .checkAgain(let seconds):
                arm(.body, seconds: seconds)
            }
        case .idle, .linger:
            close()
        case .write:
            // An event stream is slow by nature: only its stalls count (its buffer is bounded too).
            switch responseDeadline?.verdict(now: Self.now(), checkRate: !streaming) ?? .stalled {
            case .stalled:
                logger.info("response write stalled; closing", metadata: ["remote": "\(remote)"])
                close()
            case .tooSlow:
                logger.info("response read too slowly; closing", metadata: ["remote": "\(remote)", "bytes": "\(responseDeadline?.bytes ?? 0)"])
                close()
            case .checkAgain(let seconds):
                arm(.write, seconds: seconds)
            }
        }
    }

    // MARK: - Reading

    private func onReadable() {
        guard phase != .closed else { return }
        if handshaking { continueHandshake(); return }
        if phase == .lingering { discardInput(); return }
        readAvailable()
        if phase != .closed { flush() }
    }

    private func onWritable() {
        guard phase != .closed else { return }
        if handshaking { continueHandshake(); return }
        if readBlockedOnWrite {
            readBlockedOnWrite = false
            readAvailable()
        }
        flush()
    }

    private func readAvailable() {
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
                if phase == .head && timerKind == .idle { arm(.header, seconds: config.headerTimeout) }
                if phase == .body { bodyDeadline?.progressed(n, now: Self.now()) }
                if phase == .head || phase == .body { process() }
            case .wouldBlock:
                if transport is TLSTransport && transport.wantsWrite {
                    readBlockedOnWrite = true
                    enableWrite()
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
    }

    private func handleEOF() {
        disableRead()   // a level-triggered source would keep firing at EOF
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

    private func discardInput() {
        while true {
            let result: IOResult = withUnsafeTemporaryAllocation(byteCount: Self.readChunk, alignment: 16) { transport.read(into: $0) }
            switch result {
            case .done(let n):
                lingerDiscarded += n
                if lingerDiscarded > 4 * 1024 * 1024 { close(); return }
            case .wouldBlock:
                return
            case .eof, .failed:
                close()
                return
            }
        }
    }

    /// Runs the parser over buffered input while a request is being received.
    private func process() {
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

    private func onHead(_ h: HTTPRequestHead, _ framing: HTTPBodyFraming) {
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

    private func onRequestComplete() {
        guard let h = head else { return }
        cancelTimer()
        phase = .responding
        let body = sink?.finish() ?? .empty
        if case .file(let path, _) = body { requestSpoolPath = path }
        sink = nil
        let request = HTTPRequest(head: h, body: body, remoteAddress: remote)
        let responder = server.responder
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
    private func sendError(_ error: HTTPParserError) {
        server.responder.serverRejected(status: error.status, detail: error.detail, head: head, remoteAddress: remote)
        keepAlive = false
        closeAfterResponse = true
        sink?.discard()
        sink = nil
        phase = .responding
        cancelTimer()
        startResponse(error.response, for: head)
    }

    // MARK: - Writing

    private func startResponse(_ response: HTTPResponse, for requestHead: HTTPRequestHead?) {
        guard phase != .closed else {
            removeRequestSpool()
            return
        }
        let isHEAD = requestHead?.method == "HEAD"
        let version = requestHead?.version ?? .http1_1
        responseDeadline = TransferDeadline(stallSeconds: config.idleTimeout, minBytesPerSecond: config.minBodyBytesPerSecond, now: Self.now())
        var close = closeAfterResponse || !keepAlive || server.isShuttingDown
            || response.headers.containsToken("Connection", "close")
        var headers = HTTPHeaders()
        for (name, value) in response.headers {
            let lower = name.lowercased()
            if lower == "content-length" || lower == "transfer-encoding" || lower == "connection" { continue }
            guard !name.isEmpty, name.utf8.allSatisfy(isTokenChar) else {
                logger.warning("dropping a response header with an invalid name", metadata: ["name": "\(name)"])
                continue
            }
            let clean = value.utf8.contains(where: { $0 == 0x0D || $0 == 0x0A || $0 == 0 })
                ? String(decoding: value.utf8.map { ($0 == 0x0D || $0 == 0x0A || $0 == 0) ? 0x20 : $0 }, as: UTF8.self)
                : value
            headers.add(name, clean)
        }
        if !headers.contains("Date") { headers.add("Date", httpDate()) }

        let status = response.status
        let bodyForbidden = status == 204 || status == 304 || (100..<200).contains(status)
        var bodyBytes: [UInt8] = []
        var file: (fd: Int32, length: Int)?
        var stream: AsyncStream<[UInt8]>?
        var length = 0
        switch response.body {
        case .empty:
            break
        case .bytes(let b):
            bodyBytes = b
            length = b.count
        case .file(let path):
            let ffd = open(path, O_RDONLY | O_CLOEXEC)
            var st = stat()
            guard ffd >= 0, fstat(ffd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else {
                if ffd >= 0 { Glibc.close(ffd) }
                logger.error("cannot open a response file", metadata: ["path": "\(path)", "error": "\(String(cString: strerror(errno)))"])
                startResponse(.problem(status: 500, title: "Internal Server Error", detail: "The response file could not be read."), for: requestHead)
                return
            }
            file = (ffd, Int(st.st_size))
            length = Int(st.st_size)
        case .stream(let s):
            stream = s
        }

        var chunked = false
        if bodyForbidden {
            if let f = file { Glibc.close(f.fd); file = nil }
            stream = nil
            bodyBytes = []
        } else if stream != nil {
            if version == .http1_1 {
                chunked = true
                headers.add("Transfer-Encoding", "chunked")
            } else {
                close = true   // HTTP/1.0: the body ends when the connection does
            }
        } else {
            headers.add("Content-Length", String(length))
        }
        if close {
            headers.add("Connection", "close")
        } else if version == .http1_0 {
            headers.add("Connection", "keep-alive")
        }
        closeAfterResponse = close

        var text = "HTTP/1.1 \(status) \(httpReasonPhrase(status))\r\n"
        for (name, value) in headers { text += "\(name): \(value)\r\n" }
        text += "\r\n"
        var out = Array(text.utf8)

        if isHEAD {
            if let f = file { Glibc.close(f.fd) }
            file = nil
            stream = nil
            bodyBytes = []
        }
        if bodyBytes.count <= 64 * 1024 {
            out.append(contentsOf: bodyBytes)
            enqueue(out)
        } else {
            enqueue(out)
            enqueue(bodyBytes)
        }
        if let f = file, f.length > 0 {
            fileBody = (f.fd, f.length)
        } else if let f = file {
            Glibc.close(f.fd)
        }
        if let stream {
            startStream(stream, chunked: chunked)
        } else {
            responseComplete = true
        }
        flush()
    }

    private func startStream(_ stream: AsyncStream<[UInt8]>, chunked: Bool) {
        streaming = true
        if peerEOF { close(); return }
        streamTask = Task { [weak self] in
            for await chunk in stream {
                if chunk.isEmpty { continue }
                guard let self else { return }
                var framed: [UInt8]
                if chunked {
                    framed = Array((String(chunk.count, radix: 16) + "\r\n").utf8)
                    framed.reserveCapacity(framed.count + chunk.count + 2)
                    framed.append(contentsOf: chunk)
                    framed.append(contentsOf: [0x0D, 0x0A])
                } else {
                    framed = chunk
                }
                let ok = await self.enqueueStreamChunk(framed)
                if !ok { return }
            }
            guard let self else { return }
            self.queue.async {
                guard self.phase != .closed else { return }
                if chunked { self.enqueue(Array("0\r\n\r\n".utf8)) }
                self.streaming = false
                self.responseComplete = true
                self.flush()
            }
        }
    }

    /// Queues a stream chunk; suspends while too much output is pending. false once the connection is gone.
    private func enqueueStreamChunk(_ bytes: [UInt8]) async -> Bool {
        await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
            queue.async {
                guard self.phase != .closed else { continuation.resume(returning: false); return }
                self.enqueue(bytes)
                self.flush()
                if self.phase == .closed {
                    continuation.resume(returning: false)
                } else if self.outputBytes > Self.streamHighWater {
                    self.drainWaiters.append(continuation)
                } else {
                    continuation.resume(returning: true)
                }
            }
        }
    }

    private func enqueue(_ bytes: [UInt8]) {
        guard !bytes.isEmpty, phase != .closed else { return }
        output.append(bytes)
        outputBytes += bytes.count
    }

    private func flush() {
        guard phase != .closed, !handshaking else { return }
        var wrote = false
        while true {
            if output.isEmpty {
                guard let fb = fileBody else { break }
                if fb.remaining == 0 { Glibc.close(fb.fd); fileBody = nil; break }
                let want = min(fb.remaining, 256 * 1024)
                var chunk = [UInt8](repeating: 0, count: want)
                let n = chunk.withUnsafeMutableBytes { read(fb.fd, $0.baseAddress, want) }
                if n <= 0 {
                    logger.error("response file shrank or failed while sending; closing", metadata: ["remote": "\(remote)"])
                    close()
                    return
                }
                if n < want { chunk.removeLast(want - n) }
                fileBody = (fb.fd, fb.remaining - n)
                enqueue(chunk)
                continue
            }
            let result = output[0].withUnsafeBytes { transport.write(UnsafeRawBufferPointer(rebasing: $0[outputPos...])) }
            switch result {
            case .done(let n):
                wrote = wrote || n > 0
                if n > 0 { responseDeadline?.progressed(n, now: Self.now()) }
                outputPos += n
                outputBytes -= n
                if outputPos == output[0].count {
                    output.removeFirst()
                    outputPos = 0
                }
            case .wouldBlock:
                if transport.wantsWrite { enableWrite() }
                // Checked once a second at most; progress does not push the deadline back.
                if phase == .responding && timerKind != .write {
                    arm(.write, seconds: min(1, config.idleTimeout))
                }
                return
            case .eof, .failed:
                close()
                return
            }
        }
        if !readBlockedOnWrite { disableWrite() }
        if timerKind == .write { cancelTimer() }
        if !drainWaiters.isEmpty {
            let waiters = drainWaiters
            drainWaiters = []
            for w in waiters { w.resume(returning: true) }
        }
        if responseComplete && phase == .responding { finishResponse() }
    }

    private func finishResponse() {
        responseComplete = false
        streaming = false
        streamTask = nil
        requestsServed += 1
        removeRequestSpool()
        head = nil
        if closeAfterResponse || server.isShuttingDown {
            lingeringClose()
            return
        }
        if peerEOF && inputPos == input.count {
            close()
            return
        }
        phase = .head
        closeAfterResponse = false
        server.connectionBecameEvictable(self)
        if !peerEOF { enableRead() }
        if inputPos < input.count {
            arm(.header, seconds: config.headerTimeout)
            // Asynchronously: a long run of pipelined requests refused by preflight must not recurse.
            queue.async { [self] in
                guard phase == .head || phase == .body else { return }
                process()
                if phase == .head || phase == .body {
                    if peerEOF { close() } else { readAvailable() }   // an incomplete request after EOF
                }
            }
        } else {
            arm(.idle, seconds: config.idleTimeout)
        }
    }

    /// Half-close and drain what the client still sends, so it reads our last response before seeing a reset.
    private func lingeringClose() {
        if peerEOF { close(); return }
        phase = .lingering
        server.connectionIsLingering(self)
        transport.shutdownWrite()
        input = []
        inputPos = 0
        arm(.linger, seconds: 2)
        enableRead()
        discardInput()
    }
}

func formatSeconds(_ s: Double) -> String {
    s == s.rounded() ? String(Int(s)) : String(s)
}
