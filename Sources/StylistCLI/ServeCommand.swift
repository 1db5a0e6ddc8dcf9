import ArgumentParser
import Dispatch
import Foundation
import StylistService

/// `stylist serve`: the HTTP service. Settings come from defaults, then the config file
/// (`--config`, else `STYLIST_CONFIG`, else `config/stylist.json` when present), then
/// `STYLIST_*` variables, then these flags. SIGTERM or SIGINT shuts down gracefully and exits 0;
/// a second signal during shutdown exits at once (status 1; the running job is re-run on the
/// next start).
struct ServeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the HTTP service (POST /v1/jobs, poll, download).",
        discussion: "Without arguments, run from the repository root: reads config/stylist.json, finds the models in ./models or ../shared/models, listens on :8080."
    )

    @Option(help: "JSON config file (default: STYLIST_CONFIG, else config/stylist.json if present).")
    var config: String?

    @Option(help: "Address to bind (config: host).")
    var host: String?

    @Option(help: "TCP port, 0 for any free one (config: port).")
    var port: Int?

    @Option(name: .customLong("data-dir"), help: "Data directory for jobs, results and styles (config: data_dir).")
    var dataDir: String?

    @Option(help: "Directory of *.safetensors models (config: models_dir).")
    var models: String?

    @Option(name: .customLong("database-url"), help: "PostgreSQL URL shared by every replica (config: database_url; env STYLIST_DATABASE_URL).")
    var databaseURL: String?

    @Option(help: "all, api or worker (config: role); api and worker need --database-url.")
    var role: String?

    func run() throws {
        try reportingErrors {
            let (settings, file) = try StylistConfig.load(file: config) { c in
                if let host { c.host = host }
                if let port { c.port = port }
                if let dataDir { c.dataDir = dataDir }
                if let models { c.modelsDir = models }
                if let databaseURL { c.databaseURL = databaseURL }
                if let role { c.role = role }
            }
            let server = StylistServer(config: settings)
            if let file { server.logger.info("configuration read", metadata: ["file": "\(file)"]) }

            // Signal handling is in place before the socket opens, so an early SIGTERM is graceful too.
            let done = DispatchSemaphore(value: 0)
            let signalQueue = DispatchQueue(label: "stylist.signals")
            var sources: [DispatchSourceSignal] = []
            var shuttingDown = false
            for sig in [SIGTERM, SIGINT] {
                signal(sig, SIG_IGN)
                let source = DispatchSource.makeSignalSource(signal: sig, queue: signalQueue)
                source.setEventHandler {
                    if shuttingDown {
                        server.logger.warning("second signal: exiting without waiting for the running job")
                        Foundation.exit(1)
                    }
                    shuttingDown = true
                    server.logger.info("signal received", metadata: ["signal": "\(sig == SIGTERM ? "SIGTERM" : "SIGINT")"])
                    Thread.detachNewThread {
                        server.shutdown()
                        done.signal()
                    }
                }
                source.resume()
                sources.append(source)
            }
            try server.start()
            done.wait()
            withExtendedLifetime(sources) {}
        }
    }
}
