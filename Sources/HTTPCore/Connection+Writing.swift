#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Dispatch
import Foundation
import Logging

/// Writing: a response is framed and queued, flushed as the socket takes it, then the connection reads the next request or closes.
extension Connection {
    func onWritable() {
        guard phase != .closed else { return }
        if handshaking { continueHandshake(); return }
        if readBlockedOnWrite {
            readBlockedOnWrite = false
            readAvailable()
        }
        flush()
    }

    func startResponse(_ response: HTTPResponse, for requestHead: HTTPRequestHead?) {
        guard phase != .closed else {
            removeRequestSpool()
            return
        }
        let isHEAD = requestHead?.method == "HEAD"
        let version = requestHead?.version ?? .http1_1
        responseDeadline = TransferDeadline(stallSeconds: config.idleTimeout, minBytesPerSecond: config.minBodyBytesPerSecond, now: Self.now())
        var close = closeAfterResponse || !keepAlive || server.isShuttingDown
            || response.headers.containsToken("Connection", "close")

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

        var framing = ResponseFraming.length(length)
        if bodyForbidden {
            if let f = file { Glibc.close(f.fd); file = nil }
            stream = nil
            bodyBytes = []
            framing = .none
        } else if stream != nil {
            if version == .http1_1 {
                framing = .chunked
            } else {
                framing = .none
                close = true   // HTTP/1.0: the body ends when the connection does
            }
        }
        closeAfterResponse = close
        // Head and a small body go out in one buffer, so one send carries the whole response.
        var out: [UInt8] = []
        out.reserveCapacity(256 + (bodyBytes.count <= Self.coalescedBodyLimit ? bodyBytes.count : 0))
        let connectionField = close ? "close" : (version == .http1_0 ? "keep-alive" : nil)
        let dropped = ResponseHead.encode(status: status, headers: response.headers, framing: framing,
                                          connection: connectionField, date: &dateCache, into: &out)
        for name in dropped {
            logger.warning("dropping a response header with an invalid name", metadata: ["name": "\(name)"])
        }

        if isHEAD {
            if let f = file { Glibc.close(f.fd) }
            file = nil
            stream = nil
            bodyBytes = []
        }
        if bodyBytes.count <= Self.coalescedBodyLimit {
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
            startStream(stream, chunked: framing == .chunked)
        } else {
            responseComplete = true
        }
        flush()
    }

    func startStream(_ stream: AsyncStream<[UInt8]>, chunked: Bool) {
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
    func enqueueStreamChunk(_ bytes: [UInt8]) async -> Bool {
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

    func enqueue(_ bytes: [UInt8]) {
        guard !bytes.isEmpty, phase != .closed else { return }
        output.append(bytes)
        outputBytes += bytes.count
    }

    func flush() {
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

    func finishResponse() {
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
    func lingeringClose() {
        if peerEOF { close(); return }
        phase = .lingering
        server.connectionIsLingering(self)
        transport.shutdownWrite()
        input = []
        inputPos = 0
        arm(.linger, seconds: 2)
        readActive = true
        discardInput()
    }
}
