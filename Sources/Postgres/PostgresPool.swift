import Foundation
import Logging

/// A fixed-size pool of connections to one database: blocking leases with a timeout, broken
/// connections replaced with backoff, and `isAvailable` for readiness checks.
public final class PostgresPool: @unchecked Sendable {
    /// How many connections the pool keeps at most, and how patiently it waits and reconnects.
    public struct Configuration: Sendable {
        /// Most connections open at once.
        public var size: Int
        /// Default wait for a free connection in `withConnection`.
        public var acquireTimeout: TimeInterval
        /// Reconnect delays after failures.
        public var backoff: Backoff
        /// pg_stat_activity's application_name for the pool's sessions, unless the URL sets one.
        public var applicationName: String?

        public init(size: Int, acquireTimeout: TimeInterval = 10, backoff: Backoff = Backoff(),
                    applicationName: String? = "stylist") {
            self.size = max(1, size)
            self.acquireTimeout = acquireTimeout
            self.backoff = backoff
            self.applicationName = applicationName
        }
    }

    private let url: String
    private let configuration: Configuration
    private let logger: Logger
    private let condition = NSCondition()
    private var idle: [PostgresConnection] = []
    private var openCount = 0 // idle + leased + being opened
    private var backoff: Backoff
    private var nextAttempt = Date.distantPast
    private var available = false
    private var reviving = false
    private var closed = false
    private var failure: PostgresError?

    /// Creates the pool and starts opening its first connection in the background.
    /// Throws only for a malformed URL; an unreachable server makes `isAvailable` false meanwhile.
    public init(url: String, configuration: Configuration, logger: Logger = Logger(label: "stylist.postgres")) throws {
        _ = try ConnectionInfo(url: url)
        self.url = url
        self.configuration = configuration
        self.logger = logger
        backoff = configuration.backoff
        condition.lock()
        startReviverLocked()
        condition.unlock()
    }

    deinit { shutdown() }

    /// True when the last contact with the server worked: for `/readyz`.
    public var isAvailable: Bool { condition.withLock { available && !closed } }

    /// The most recent connection failure while unavailable (password never included).
    public var lastError: PostgresError? { condition.withLock { available ? nil : failure } }

    /// Connections currently open (idle, leased or being opened).
    public var openConnections: Int { condition.withLock { openCount } }

    /// Leases a connection to `body`, waiting up to `timeout` (default: the configured one) for one.
    /// A connection `body` leaves broken, or inside a transaction that cannot be rolled back, is discarded.
    public func withConnection<T>(timeout: TimeInterval? = nil, _ body: (PostgresConnection) throws -> T) throws -> T {
        let connection = try acquire(deadline: Date(timeIntervalSinceNow: timeout ?? configuration.acquireTimeout))
        do {
            let value = try body(connection)
            release(connection, brokenByError: false)
            return value
        } catch {
            release(connection, brokenByError: (error as? PostgresError)?.connectionBroken ?? false)
            throw error
        }
    }

    /// Closes idle connections and refuses new leases; leased ones close when returned.
    public func shutdown() {
        condition.lock()
        closed = true
        let dropped = idle
        idle.removeAll()
        openCount -= dropped.count
        condition.broadcast()
        condition.unlock()
        _ = dropped // closed here, outside the lock, by deinit
    }

    private func acquire(deadline: Date) throws -> PostgresConnection {
        condition.lock()
        while true {
            guard !closed else {
                condition.unlock()
                throw PostgresError(kind: .usage, message: "the connection pool is shut down")
            }
            if let connection = idle.popLast() {
                condition.unlock()
                // Checked outside the lock: a suspicious socket costs a round trip.
                if !connection.hasBrokenWhileIdle() { return connection }
                condition.lock()
                discardLocked(reason: "a pooled connection was closed by the server")
                continue
            }
            let now = Date()
            if openCount < configuration.size, now >= nextAttempt {
                openCount += 1
                condition.unlock()
                return try open()
            }
            guard now < deadline else {
                let reason = available ? "all \(configuration.size) connections are busy"
                    : "the database is unavailable" + (failure.map { ": \($0.message)" } ?? "")
                condition.unlock()
                throw PostgresError(kind: .poolTimeout, message: reason, connectionBroken: !available)
            }
            let wake = openCount < configuration.size ? min(deadline, nextAttempt) : deadline
            _ = condition.wait(until: wake)
        }
    }

    /// Opens a connection for a slot already counted in `openCount`.
    private func open() throws -> PostgresConnection {
        do {
            let connection = try PostgresConnection(url: url, applicationName: configuration.applicationName)
            condition.withLock { succeededLocked() }
            return connection
        } catch {
            condition.lock()
            openCount -= 1
            failedLocked(error)
            condition.unlock()
            throw error
        }
    }

    private func release(_ connection: PostgresConnection, brokenByError: Bool) {
        var healthy = !brokenByError && connection.isConnected
        if healthy, connection.isInTransaction {
            try? connection.execute("ROLLBACK")
            healthy = connection.isConnected && !connection.isInTransaction
        }
        condition.lock()
        defer { condition.unlock() }
        if !healthy {
            discardLocked(reason: "a connection broke during use")
        } else if closed {
            openCount -= 1
        } else {
            idle.append(connection)
            available = true
        }
        condition.broadcast()
    }

    private func discardLocked(reason: String) {
        openCount -= 1
        if available { logger.warning("PostgreSQL: \(reason); reconnecting") }
        available = false
        startReviverLocked()
        condition.broadcast()
    }

    private func succeededLocked() {
        if !available, failure != nil { logger.info("PostgreSQL: connected again") }
        backoff.succeeded()
        nextAttempt = .distantPast
        available = true
        failure = nil
        condition.broadcast()
    }

    private func failedLocked(_ error: Error) {
        let delay = backoff.failed()
        nextAttempt = Date(timeIntervalSinceNow: delay)
        if available || failure == nil { logger.warning("PostgreSQL: cannot connect: \(error); retrying") }
        available = false
        failure = error as? PostgresError
            ?? PostgresError(kind: .connection, message: "\(error)", connectionBroken: true)
        startReviverLocked()
        condition.broadcast()
    }

    /// One background thread per outage: it keeps trying (with backoff) until a connection opens,
    /// so readiness recovers even when nothing asks the pool for a connection.
    private func startReviverLocked() {
        guard !reviving, !closed else { return }
        reviving = true
        let thread = Thread { [weak self] in self?.revive() }
        thread.name = "postgres-pool-reviver"
        thread.start()
    }

    private func revive() {
        condition.lock()
        defer { reviving = false; condition.unlock() }
        while !closed, !available {
            let now = Date()
            guard openCount < configuration.size, now >= nextAttempt else {
                _ = condition.wait(until: openCount < configuration.size ? nextAttempt : now.addingTimeInterval(1))
                continue
            }
            openCount += 1
            condition.unlock()
            let connection = try? open()
            condition.lock()
            if let connection {
                if closed { openCount -= 1 } else { idle.append(connection) }
                condition.broadcast()
            }
        }
    }
}
