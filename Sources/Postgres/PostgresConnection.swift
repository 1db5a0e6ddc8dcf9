import CLibPQ
import Foundation

/// One blocking libpq connection. Not thread-safe: one owner (thread or pool lease) at a time.
public final class PostgresConnection: CustomStringConvertible, @unchecked Sendable {
    let handle: OpaquePointer
    let info: ConnectionInfo
    private var savepointDepth = 0

    /// Connects to `url` (`postgres://user:pass@host:port/db?sslmode=...` or a libpq conninfo string).
    /// `applicationName` labels the session in pg_stat_activity unless the URL sets its own.
    public init(url: String, applicationName: String? = nil) throws {
        info = try ConnectionInfo(url: url)
        let extra = applicationName.map { [("application_name", $0)] } ?? []
        guard let handle = info.connect(overriding: extra) else {
            throw PostgresError(kind: .connection, message: "out of memory opening a connection", connectionBroken: true)
        }
        guard PQstatus(handle) == CONNECTION_OK else {
            let message = PostgresError.connectionMessage(handle, redacting: info.password) ?? "connection failed"
            PQfinish(handle)
            throw PostgresError(kind: .connection, message: message, connectionBroken: true)
        }
        self.handle = handle
        // NOTICE and WARNING messages (e.g. "drop cascades to ...") would go to stderr; they are not errors.
        PQsetNoticeProcessor(handle, { _, _ in }, nil)
        // Date accessors read ISO text, and `timestamp` (no zone) values are taken as UTC both ways;
        // the server's defaults may differ.
        do { try execute("SET DateStyle = 'ISO'; SET TimeZone = 'UTC'") } catch { PQfinish(handle); throw error }
    }

    deinit { PQfinish(handle) }

    /// `postgres://user@host:port/db`: the connection's address without password or options.
    public var description: String { info.redacted }

    /// The URL with its password and query removed, for logs.
    public static func redacted(url: String) -> String {
        (try? ConnectionInfo(url: url).redacted) ?? "postgres://(unparseable URL)"
    }

    /// False once libpq has seen the connection fail; such a connection must be replaced.
    public var isConnected: Bool { PQstatus(handle) == CONNECTION_OK }

    /// True while a transaction block is open (or failed and not yet rolled back).
    public var isInTransaction: Bool {
        let status = PQtransactionStatus(handle)
        return status == PQTRANS_INTRANS || status == PQTRANS_INERROR || status == PQTRANS_ACTIVE
    }

    /// The server process serving this connection (for pg_stat_activity / pg_terminate_backend).
    public var backendPID: Int32 { PQbackendPID(handle) }

    /// The socket's descriptor, for poll().
    var socket: Int32 { PQsocket(handle) }

    /// Runs one statement with `$1...` parameters (text, or binary for bytea) and returns its rows.
    @discardableResult
    public func query(_ sql: String, _ parameters: [PostgresValue?] = []) throws -> PostgresRows {
        let encoded = try EncodedParameters(parameters)
        let result = encoded.withArrays { values, lengths, formats, types in
            PQexecParams(handle, sql, encoded.count, types, values, lengths, formats, 0)
        }
        return try check(result)
    }

    /// Runs one or more `;`-separated statements without parameters (DDL, migrations, BEGIN...).
    public func execute(_ sql: String) throws {
        _ = try check(PQexec(handle, sql))
    }

    /// Runs `body` inside BEGIN/COMMIT; any error thrown rolls back and is rethrown. Called inside
    /// another transaction it uses a savepoint, so only its own work is undone on a throw.
    public func transaction<T>(_ body: (PostgresConnection) throws -> T) throws -> T {
        guard isInTransaction else { return try topLevelTransaction(body) }
        savepointDepth += 1
        defer { savepointDepth -= 1 }
        let name = "stylist_savepoint_\(savepointDepth)"
        try execute("SAVEPOINT \(name)")
        let value: T
        do {
            value = try body(self)
        } catch {
            if isConnected { try? execute("ROLLBACK TO SAVEPOINT \(name); RELEASE SAVEPOINT \(name)") }
            throw error
        }
        try execute("RELEASE SAVEPOINT \(name)")
        return value
    }

    private func topLevelTransaction<T>(_ body: (PostgresConnection) throws -> T) throws -> T {
        try execute("BEGIN")
        let value: T
        do {
            value = try body(self)
        } catch {
            if isConnected { try? execute("ROLLBACK") }
            throw error
        }
        try execute("COMMIT")
        return value
    }

    /// Sends NOTIFY on `channel` with `payload` (delivered at commit when inside a transaction).
    public func notify(channel: String, payload: String = "") throws {
        try query("SELECT pg_notify($1, $2)", [.text(channel), .text(payload)])
    }

    /// Quotes `name` as an SQL identifier (for LISTEN and other statements that take no parameters).
    public func quoteIdentifier(_ name: String) throws -> String {
        let utf8 = Array(name.utf8)
        guard let quoted = PQescapeIdentifier(handle, name, utf8.count) else {
            throw PostgresError(kind: .usage, message: PostgresError.connectionMessage(handle, redacting: nil) ?? "cannot quote identifier")
        }
        defer { PQfreemem(quoted) }
        return String(cString: quoted)
    }

    /// Turns a libpq result into rows, or into an error carrying SQLSTATE and connection state.
    func check(_ result: OpaquePointer?) throws -> PostgresRows {
        guard let result else {
            throw PostgresError.from(result: nil, connection: handle, redacting: info.password)
        }
        switch PQresultStatus(result) {
        case PGRES_TUPLES_OK, PGRES_COMMAND_OK, PGRES_EMPTY_QUERY, PGRES_SINGLE_TUPLE:
            return PostgresRows(result: result)
        case PGRES_COPY_IN, PGRES_COPY_OUT, PGRES_COPY_BOTH:
            PQclear(result)
            // Leaving COPY mode is not supported here; the connection is not usable for other statements.
            throw PostgresError(kind: .usage, message: "COPY is not supported by this client", connectionBroken: true)
        default:
            let error = PostgresError.from(result: result, connection: handle, redacting: info.password)
            PQclear(result)
            throw error
        }
    }

    /// True when the idle connection's socket shows the server closed or is closing the session.
    /// A terminated backend sends its FATAL message and closes; reading it marks libpq's status bad.
    func hasBrokenWhileIdle() -> Bool {
        guard isConnected else { return true }
        var descriptor = pollfd(fd: socket, events: Int16(POLLIN), revents: 0)
        guard poll(&descriptor, 1, 0) > 0 else { return false }
        if PQconsumeInput(handle) == 0 { return true }
        // Stray notifications on a pooled connection are not anyone's; drop them.
        while let note = PQnotifies(handle) { PQfreemem(note) }
        guard isConnected else { return true }
        // Unsolicited input may be a FATAL message whose close has not arrived yet: ask the server.
        return (try? execute("SELECT 1")) == nil
    }
}
