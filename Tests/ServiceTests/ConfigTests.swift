import Foundation
import StylistService
import StylistTesting
import XCTest

/// config/stylist.json, STYLIST_* overrides, flags, and clear startup errors.
final class ConfigTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        dir = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("stylist-config-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    func write(_ json: String) throws -> String {
        let path = dir.appendingPathComponent("c.json").path
        try json.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// The shipped file lists every setting, each at its default.
    func testShippedConfigHoldsEveryDefault() throws {
        let path = TestPaths.repoRoot.appendingPathComponent("config/stylist.json").path
        let shipped = try StylistConfig.decode(try Data(contentsOf: URL(fileURLWithPath: path)), name: path)
        XCTAssertEqual(shipped, StylistConfig())
        let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
        let encoded = try XCTUnwrap(try JSONSerialization.jsonObject(with: JSONEncoder().encode(StylistConfig())) as? [String: Any])
        XCTAssertEqual(Set(object.keys), Set(encoded.keys), "config/stylist.json must list every setting")
        XCTAssertEqual(Set((object["http"] as? [String: Any] ?? [:]).keys), Set((encoded["http"] as? [String: Any] ?? [:]).keys))
        XCTAssertEqual(Set((object["tls"] as? [String: Any] ?? [:]).keys), Set((encoded["tls"] as? [String: Any] ?? [:]).keys))
    }

    func testPrecedenceFileThenEnvironmentThenFlags() throws {
        let path = try write(#"{"port": 9000, "queue_size": 5, "http": {"max_body_bytes": 2048}, "api_keys": ["a"]}"#)
        let env = ["STYLIST_PORT": "9001", "STYLIST_HTTP_BODY_TIMEOUT_SECONDS": "3.5", "STYLIST_API_KEYS": "x, y",
                   "STYLIST_MODELS": "/m", "STYLIST_TLS_CERT": ""]
        let (c, file) = try StylistConfig.load(file: path, environment: env) { $0.port = 9002 }
        XCTAssertEqual(file, path)
        XCTAssertEqual(c.port, 9002)
        XCTAssertEqual(c.queueSize, 5)
        XCTAssertEqual(c.http.maxBodyBytes, 2048)
        XCTAssertEqual(c.http.bodyTimeoutSeconds, 3.5)
        XCTAssertEqual(c.apiKeys, ["x", "y"])
        XCTAssertEqual(c.modelsDir, "/m")
        XCTAssertEqual(c.workers, 1)
        let (envOnly, _) = try StylistConfig.load(file: path, environment: ["STYLIST_PORT": "9001"])
        XCTAssertEqual(envOnly.port, 9001)
        XCTAssertEqual(try StylistConfig.load(file: path, environment: [:]).config.port, 9000)
    }

    func testBadSettingsAreClearStartupErrors() throws {
        func error(_ json: String?, env: [String: String] = [:]) -> String {
            do {
                let path = try json.map(write)
                _ = try StylistConfig.load(file: path ?? dir.appendingPathComponent("none.json").path, environment: env)
                return "no error"
            } catch {
                return "\(error)"
            }
        }
        XCTAssertTrue(error(#"{"prot": 1}"#).contains("unknown setting 'prot'"))
        XCTAssertTrue(error(#"{"http": {"max_body": 1}}"#).contains("unknown setting 'http.max_body'"))
        XCTAssertTrue(error(#"{"port": "eighty"}"#).contains("'port' must be an integer"), error(#"{"port": "eighty"}"#))
        XCTAssertTrue(error(#"{"port": 70000}"#).contains("port must be 0...65535"))
        XCTAssertTrue(error(#"{"queue_size": 0}"#).contains("queue_size"))
        XCTAssertTrue(error(#"{"max_size": 4096}"#).contains("max_size"))
        XCTAssertTrue(error(#"{"tls": {"cert": "/x.pem"}}"#).contains("tls.cert and tls.key"))
        XCTAssertTrue(error(#"{"log_level": "loud"}"#).contains("log_level"))
        XCTAssertTrue(error("{ not json").contains("not valid JSON"))
        XCTAssertTrue(error(nil).contains("does not exist"))
        XCTAssertTrue(error("{}", env: ["STYLIST_WORKERS": "many"]).contains("STYLIST_WORKERS"))
    }

    /// `http.event_loop_threads`: null (HTTPCore's one per active processor) unless the file or
    /// `STYLIST_HTTP_EVENT_LOOP_THREADS` gives a count in 1...256.
    func testEventLoopThreadsAreParsedAndChecked() throws {
        XCTAssertNil(try StylistConfig.load(file: try write("{}"), environment: [:]).config.http.eventLoopThreads)
        let path = try write(#"{"http": {"event_loop_threads": 3}}"#)
        XCTAssertEqual(try StylistConfig.load(file: path, environment: [:]).config.http.eventLoopThreads, 3)
        let env = ["STYLIST_HTTP_EVENT_LOOP_THREADS": "256"]
        XCTAssertEqual(try StylistConfig.load(file: path, environment: env).config.http.eventLoopThreads, 256)
        let unset = ["STYLIST_HTTP_EVENT_LOOP_THREADS": ""]
        XCTAssertNil(try StylistConfig.load(file: path, environment: unset).config.http.eventLoopThreads)
        XCTAssertNil(try StylistConfig.load(file: try write(#"{"http": {"event_loop_threads": null}}"#), environment: [:])
            .config.http.eventLoopThreads)

        func error(_ json: String, env: [String: String] = [:]) -> String {
            do {
                _ = try StylistConfig.load(file: try write(json), environment: env)
                return "no error"
            } catch {
                return "\(error)"
            }
        }
        for count in [0, -1, 257] {
            let e = error(#"{"http": {"event_loop_threads": \#(count)}}"#)
            XCTAssertTrue(e.contains("http.event_loop_threads must be 1...256, got \(count)"), e)
        }
        let text = error(#"{"http": {"event_loop_threads": "4"}}"#)
        XCTAssertTrue(text.contains("'http.event_loop_threads' must be an integer or null"), text)
        let fraction = error(#"{"http": {"event_loop_threads": 2.5}}"#)
        XCTAssertTrue(fraction.contains("'http.event_loop_threads' must be an integer or null"), fraction)
        let many = error("{}", env: ["STYLIST_HTTP_EVENT_LOOP_THREADS": "many"])
        XCTAssertTrue(many.contains("STYLIST_HTTP_EVENT_LOOP_THREADS") && many.contains("not an integer"), many)
        let zero = error("{}", env: ["STYLIST_HTTP_EVENT_LOOP_THREADS": "0"])
        XCTAssertTrue(zero.contains("http.event_loop_threads must be 1...256, got 0"), zero)
    }

    /// The server runs as many event loops as `http.event_loop_threads` asks: loop threads
    /// (`stylist-loop-N`) that were not there before it started, and are gone after it stops.
    func testTheServerRunsTheConfiguredEventLoops() throws {
        func loopThreads() -> Set<String> {
            let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []
            return Set(tasks.filter {
                ((try? String(contentsOfFile: "/proc/self/task/\($0)/comm", encoding: .utf8)) ?? "").hasPrefix("stylist-loop-")
            })
        }
        // Not the default count (one per active processor), which the server would run without the setting.
        let count = ProcessInfo.processInfo.activeProcessorCount == 3 ? 2 : 3
        // Thread ids, not counts: loops of servers stopped by earlier tests may still be ending.
        let before = loopThreads()
        let server = try TestServer { $0.http.eventLoopThreads = count }
        XCTAssertTrue(TestServer.eventually(timeout: 10) { loopThreads().subtracting(before).count == count },
                      "\(loopThreads().subtracting(before).count) new loop threads, \(count) configured")
        let started = loopThreads().subtracting(before)
        server.stop(grace: 0)
        XCTAssertTrue(TestServer.eventually(timeout: 10) { loopThreads().isDisjoint(with: started) }, "loop threads left running")
    }

    func testStartupFailsClearlyOnAMissingModel() throws {
        var c = StylistConfig()
        c.host = "127.0.0.1"
        c.port = 0
        c.dataDir = dir.appendingPathComponent("data").path
        c.modelsDir = TestPaths.models
        c.defaultModel = "no-such-model"
        XCTAssertThrowsError(try StylistServer(config: c).start()) { e in
            XCTAssertTrue("\(e)".contains("no-such-model"), "\(e)")
        }
        c.defaultModel = "microast"
        c.modelsDir = dir.appendingPathComponent("missing").path
        XCTAssertThrowsError(try StylistServer(config: c).start()) { e in
            XCTAssertTrue("\(e)".contains("models_dir"), "\(e)")
        }
        // One server per data directory.
        c.modelsDir = TestPaths.models
        let first = StylistServer(config: c)
        try first.start()
        defer { first.shutdown(grace: 0) }
        XCTAssertThrowsError(try StylistServer(config: c).start()) { e in
            XCTAssertTrue("\(e)".contains("in use"), "\(e)")
        }
    }
}
