#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Logging
import XCTest
import HTTPCore
import TestSupport

/// Shared state between a test and its responder.
final class Recorder: @unchecked Sendable {
    private let lock = NSLock()
    private var _spoolPaths: [String] = []
    private var gateOpen = false
    private var gateWaiters: [CheckedContinuation<Void, Never>] = []
    var servedFile = ""

    var spoolPaths: [String] { lock.lock(); defer { lock.unlock() }; return _spoolPaths }
    func record(_ path: String) { lock.lock(); _spoolPaths.append(path); lock.unlock() }

    private var _slowBegun: [String] = []
    /// The `n` of each `/slow` request the responder has begun answering, in order: the server
    /// counts its connection as busy from before that moment until the answer is sent.
    var slowBegun: [String] { lock.lock(); defer { lock.unlock() }; return _slowBegun }
    func beginSlow(_ n: String) { lock.lock(); _slowBegun.append(n); lock.unlock() }

    func waitGate() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            lock.lock()
            if gateOpen { lock.unlock(); c.resume() } else { gateWaiters.append(c); lock.unlock() }
        }
    }

    func openGate() {
        lock.lock()
        gateOpen = true
        let waiters = gateWaiters
        gateWaiters = []
        lock.unlock()
        waiters.forEach { $0.resume() }
    }
}

struct TestResponder: HTTPResponder {
    let recorder: Recorder

    func preflight(_ head: HTTPRequestHead) -> HTTPResponse? {
        if head.path == "/refuse" { return .problem(status: 401, title: "Unauthorized", detail: "Missing API key.") }
        return nil
    }

    func serverRejected(status: Int, detail: String, head: HTTPRequestHead?, remoteAddress: String) {
        recorder.record("rejected \(status) \(head?.path ?? "-")")
    }

    func text(_ s: String, _ extra: HTTPHeaders = [:]) -> HTTPResponse {
        var h = extra
        h["Content-Type"] = "text/plain"
        return HTTPResponse(status: 200, headers: h, body: .bytes(Array(s.utf8)))
    }

    /// `/now` is answered on the connection's queue, without a task.
    func respondImmediately(to request: HTTPRequest) -> HTTPResponse? {
        guard request.head.path == "/now" else { return nil }
        return text("now \(request.head.queryValue("n") ?? "")", ["X-Answered": "immediately"])
    }

    func respond(to request: HTTPRequest) async -> HTTPResponse {
        switch request.head.path {
        case "/hello":
            return text("hello")
        case "/slow":
            // `ms` milliseconds, or with `gate` until the test opens the recorder's gate.
            recorder.beginSlow(request.head.queryValue("n") ?? "")
            if request.head.queryValue("gate") != nil {
                await recorder.waitGate()
            } else {
                let ms = UInt64(request.head.queryValue("ms") ?? "0") ?? 0
                try? await Task.sleep(nanoseconds: ms * 1_000_000)
            }
            return text("slow \(request.head.queryValue("n") ?? "")")
        case "/echo":
            switch request.body {
            case .empty:
                return text("", ["X-Body-Kind": "empty"])
            case .bytes(let b):
                return HTTPResponse(status: 200, headers: ["X-Body-Kind": "memory"], body: .bytes(b))
            case .file(let path, let length):
                recorder.record(path)
                let data = (try? request.body.readAll()) ?? []
                return HTTPResponse(status: 200, headers: ["X-Body-Kind": "file", "X-Length": "\(length)"], body: .bytes(data))
            }
        case "/sse":
            let (stream, continuation) = AsyncStream.makeStream(of: [UInt8].self)
            let recorder = self.recorder
            Task {
                continuation.yield(Array("data: one\n\n".utf8))
                await recorder.waitGate()
                continuation.yield([])
                continuation.yield(Array("data: two\n\n".utf8))
                continuation.finish()
            }
            return HTTPResponse(status: 200, headers: ["Content-Type": "text/event-stream"], body: .stream(stream))
        case "/file":
            return HTTPResponse(status: 200, headers: ["Content-Type": "application/octet-stream"], body: .file(path: recorder.servedFile))
        case "/form":
            do {
                let parts = try MultipartParser.parse(body: request.body, contentType: request.head.headers["Content-Type"] ?? "",
                                                      maxPartBytes: 10 << 20, maxParts: 10, spoolDirectory: NSTemporaryDirectory())
                defer { MultipartParser.removeSpoolFiles(parts) }
                return text(parts.map { "\($0.name)=\($0.filename ?? "-"):\($0.body.count)" }.joined(separator: ","))
            } catch {
                return .problem(status: 400, title: "Bad Request", detail: "\(error)")
            }
        case "/watched":
            let (stream, continuation) = AsyncStream.makeStream(of: [UInt8].self)
            let recorder = self.recorder
            continuation.onTermination = { _ in recorder.record("terminated") }
            continuation.yield(Array("data: first\n\n".utf8))
            return HTTPResponse(status: 200, headers: ["Content-Type": "text/event-stream"], body: .stream(stream))
        case "/headers":
            // A value with a line break, a name that is not a token, framing fields and a Date of its own.
            return HTTPResponse(status: 200, headers: ["X-Split": "a\r\nSet-Cookie: evil=1", "Bad Name": "x",
                                                       "Content-Length": "999", "Connection": "upgrade",
                                                       "Date": "Thu, 01 Jan 1970 00:00:00 GMT"],
                                body: .bytes(Array("ok".utf8)))
        case "/nocontent":
            return HTTPResponse(status: 204)
        default:
            return .problem(status: 404, title: "Not Found", detail: "No route for \(request.head.path).")
        }
    }
}

/// A real `HTTPServer` on an ephemeral loopback port answering with `TestResponder`, and a spool directory per test.
class ServerTestCase: XCTestCase {
    var spool: String!
    var recorder: Recorder!

    override func setUpWithError() throws {
        spool = NSTemporaryDirectory() + "httpcore-srv-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: spool, withIntermediateDirectories: true)
        recorder = Recorder()
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: spool)
    }

    func makeServer(_ configure: (inout HTTPServerConfiguration) -> Void = { _ in }) throws -> HTTPServer {
        var config = HTTPServerConfiguration()
        config.host = "127.0.0.1"
        config.port = 0
        config.spoolDirectory = spool
        configure(&config)
        var logger = Logger(label: "test")
        logger.logLevel = .warning
        let server = HTTPServer(configuration: config, responder: TestResponder(recorder: recorder), logger: logger)
        try server.start()
        addTeardownBlock { server.shutdown(grace: 1) }
        return server
    }

    func spoolContents() -> [String] { (try? FileManager.default.contentsOfDirectory(atPath: spool)) ?? [] }

    /// Waits (generously) for a condition the server reaches just after the client has its response.
    func eventually(_ condition: () -> Bool, timeout: Double = 5) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if condition() { return true }
            usleep(10_000)
        }
        return condition()
    }
}
