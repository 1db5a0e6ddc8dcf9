import CLibPQ
import Foundation
import Logging

/// LISTENs on channels from its own thread and connection, delivering each NOTIFY to a callback;
/// reconnects with backoff after a loss and then calls `onReconnect`, since notifications sent
/// while disconnected are gone and the caller has to re-read the state they would have announced.
public final class PostgresListener: @unchecked Sendable {
    /// A notification: the channel it was sent on and its payload.
    public typealias Notification = (channel: String, payload: String)

    private let url: String
    private let channels: [String]
    private let onNotification: (Notification) -> Void
    private let onReconnect: () -> Void
    private let logger: Logger
    private let pingInterval: TimeInterval
    private var backoff: Backoff
    private let state = NSCondition()
    private var stopping = false
    private var listening = false
    private var started = false
    private var finished = false
    private var connectionPID: Int32 = 0
    private let wakePipe: (read: Int32, write: Int32)
    private var thread: Thread?

    /// Prepares a listener; nothing connects until `start()`. Callbacks run on the listener's thread,
    /// one at a time, and should hand long work elsewhere. `pingInterval` bounds how long a silently
    /// vanished server goes unnoticed.
    public init(url: String, channels: [String], backoff: Backoff = Backoff(), pingInterval: TimeInterval = 10,
                logger: Logger = Logger(label: "stylist.postgres.listener"),
                onReconnect: @escaping () -> Void = {},
                onNotification: @escaping (Notification) -> Void) throws {
        _ = try ConnectionInfo(url: url)
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw PostgresError.io("cannot create the listener's wake pipe", errno) }
        _ = fcntl(fds[0], F_SETFL, O_NONBLOCK)
        _ = fcntl(fds[1], F_SETFL, O_NONBLOCK)
        wakePipe = (fds[0], fds[1])
        self.url = url
        self.channels = channels
        self.backoff = backoff
        self.pingInterval = pingInterval
        self.logger = logger
        self.onReconnect = onReconnect
        self.onNotification = onNotification
    }

    deinit {
        close(wakePipe.read)
        close(wakePipe.write)
    }

    /// Starts the listener's thread, which connects, LISTENs and then waits for notifications.
    public func start() {
        let first = state.withLock { () -> Bool in
            defer { started = true }
            return !started && !stopping
        }
        guard first else { return }
        let thread = Thread { self.run() }
        thread.name = "postgres-listener"
        state.withLock { self.thread = thread }
        thread.start()
    }

    /// True while connected with every LISTEN in place.
    public var isListening: Bool { state.withLock { listening } }

    /// The listener's server process while connected (0 otherwise), e.g. for pg_terminate_backend in tests.
    public var backendPID: Int32 { state.withLock { connectionPID } }

    /// Blocks until the listener is LISTENing (true) or `timeout` passes (false). Reading state after
    /// this returns true misses nothing: later changes arrive as notifications.
    public func waitUntilListening(timeout: TimeInterval) -> Bool {
        let deadline = Date(timeIntervalSinceNow: timeout)
        state.lock()
        defer { state.unlock() }
        while !listening, !stopping {
            if !state.wait(until: deadline) { break }
        }
        return listening
    }

    /// Stops the thread and closes its connection; returns once the thread has finished (if started).
    /// Called from a callback (on the listener's own thread) it only asks, and returns at once.
    public func stop(timeout: TimeInterval = 10) {
        state.lock()
        stopping = true
        state.broadcast()
        let running = started && thread !== Thread.current
        state.unlock()
        guard running else { return }
        var byte: UInt8 = 1
        _ = write(wakePipe.write, &byte, 1)
        state.lock()
        let deadline = Date(timeIntervalSinceNow: timeout)
        while !finished, state.wait(until: deadline) {}
        state.unlock()
    }

    private var isStopping: Bool { state.withLock { stopping } }

    private func run() {
        // Dropping `thread` here breaks the listener -> thread -> closure -> listener cycle.
        defer { state.withLock { finished = true; listening = false; connectionPID = 0; thread = nil; state.broadcast() } }
        var connectedBefore = false
        var failures = 0
        while !isStopping {
            guard let connection = connectAndListen(reportFailure: failures == 0) else {
                failures += 1
                sleepUnlessStopped(backoff.failed())
                continue
            }
            failures = 0
            backoff.succeeded()
            state.withLock { listening = true; connectionPID = connection.backendPID; state.broadcast() }
            if connectedBefore {
                logger.info("PostgreSQL listener: connected again")
                onReconnect()
            }
            connectedBefore = true
            receive(on: connection)
            state.withLock { listening = false; connectionPID = 0 }
            if !isStopping { logger.warning("PostgreSQL listener: connection lost; reconnecting") }
        }
    }

    /// Connects and LISTENs; only the first failure of an outage is a warning, the retries are debug.
    private func connectAndListen(reportFailure: Bool) -> PostgresConnection? {
        do {
            let connection = try PostgresConnection(url: url, applicationName: "stylist-listener")
            for channel in channels { try connection.execute("LISTEN \(try connection.quoteIdentifier(channel))") }
            return connection
        } catch {
            if reportFailure {
                logger.warning("PostgreSQL listener: \(error); retrying")
            } else {
                logger.debug("PostgreSQL listener: \(error)")
            }
            return nil
        }
    }

    /// Waits on the socket and the wake pipe, delivering notifications until the connection fails or stop().
    private func receive(on connection: PostgresConnection) {
        var lastTraffic = Date()
        while !isStopping {
            var descriptors = [pollfd(fd: connection.socket, events: Int16(POLLIN), revents: 0),
                               pollfd(fd: wakePipe.read, events: Int16(POLLIN), revents: 0)]
            let waitMilliseconds = Int32(max(0, pingInterval - Date().timeIntervalSince(lastTraffic)) * 1000)
            let ready = poll(&descriptors, 2, waitMilliseconds)
            if ready < 0, errno != EINTR { return }
            if descriptors[1].revents != 0 { drainWakePipe() }
            if ready > 0, descriptors[0].revents != 0 {
                lastTraffic = Date()
                guard PQconsumeInput(connection.handle) == 1 else { return }
            } else if ready == 0 {
                // Quiet for pingInterval: a round trip proves the server is still there.
                guard (try? connection.execute("SELECT 1")) != nil else { return }
                lastTraffic = Date()
            }
            while let note = PQnotifies(connection.handle) {
                let notification = (channel: String(cString: note.pointee.relname),
                                    payload: String(cString: note.pointee.extra))
                PQfreemem(note)
                onNotification(notification)
            }
            guard connection.isConnected else { return }
        }
    }

    private func drainWakePipe() {
        var buffer = [UInt8](repeating: 0, count: 64)
        while read(wakePipe.read, &buffer, buffer.count) > 0 {}
    }

    private func sleepUnlessStopped(_ seconds: TimeInterval) {
        state.lock()
        let deadline = Date(timeIntervalSinceNow: seconds)
        while !stopping, state.wait(until: deadline) {}
        state.unlock()
    }
}
