import Foundation
import CLibPQ

/// An error from PostgreSQL, libpq or this client, with the server's SQLSTATE when there is one.
public struct PostgresError: Error, CustomStringConvertible, Sendable {
    /// Where an error comes from, so callers can tell a refused statement from a lost server.
    public enum Kind: Sendable, Equatable {
        /// The server refused a statement; `sqlState` says why.
        case server
        /// Connecting failed, or the connection broke during a call.
        case connection
        /// No pooled connection became free (or could be opened) within the timeout.
        case poolTimeout
        /// A column value does not read as the type asked for, or a column name is unknown.
        case decoding
        /// A file read or written by the chunk helpers failed.
        case io
        /// The call itself is invalid (unsupported result, misuse of an API).
        case usage
    }

    public let kind: Kind
    /// Five-character SQLSTATE (e.g. "23505") for server errors, else nil.
    public let sqlState: String?
    /// Human-readable message; never contains the connection password.
    public let message: String
    /// The server's DETAIL line, when it sent one.
    public let detail: String?
    /// The constraint a violation names (unique, foreign key, check), when the server sent one.
    public let constraint: String?
    /// True when the connection is unusable afterwards: the caller should drop it and reconnect.
    public let connectionBroken: Bool

    public init(kind: Kind, message: String, sqlState: String? = nil, detail: String? = nil,
                constraint: String? = nil, connectionBroken: Bool = false) {
        self.kind = kind
        self.message = message
        self.sqlState = sqlState
        self.detail = detail
        self.constraint = constraint
        self.connectionBroken = connectionBroken
    }

    public var description: String {
        var text = "PostgreSQL \(kind)"
        if let sqlState { text += " \(sqlState)" }
        text += ": \(message)"
        if let detail { text += " (\(detail))" }
        if connectionBroken { text += " [connection broken]" }
        return text
    }

    /// SQLSTATE 23505: a unique or primary-key constraint refused a row.
    public var isUniqueViolation: Bool { sqlState == SQLState.uniqueViolation }
    /// SQLSTATE 40001 or 40P01: the transaction lost a race and can be retried as a whole.
    public var isRetryableTransactionFailure: Bool {
        sqlState == SQLState.serializationFailure || sqlState == SQLState.deadlockDetected
    }

    /// SQLSTATE codes callers commonly branch on.
    public enum SQLState {
        public static let uniqueViolation = "23505"
        public static let foreignKeyViolation = "23503"
        public static let serializationFailure = "40001"
        public static let deadlockDetected = "40P01"
        public static let lockNotAvailable = "55P03"
        public static let queryCanceled = "57014"
        public static let adminShutdown = "57P01"
        public static let crashShutdown = "57P02"
        public static let cannotConnectNow = "57P03"
        public static let undefinedTable = "42P01"
    }

    /// SQLSTATEs after which the server has closed (or is closing) the session.
    static func meansConnectionLost(_ sqlState: String?) -> Bool {
        guard let sqlState else { return false }
        return sqlState.hasPrefix("08") || sqlState == SQLState.adminShutdown
            || sqlState == SQLState.crashShutdown || sqlState == SQLState.cannotConnectNow
    }
}

extension PostgresError {
    /// Builds the error for a failed result (or a missing one, which means the connection failed).
    static func from(result: OpaquePointer?, connection: OpaquePointer?, redacting secret: String?) -> PostgresError {
        let broken = connection.map { PQstatus($0) != CONNECTION_OK } ?? true
        guard let result else {
            return PostgresError(kind: .connection,
                                 message: connectionMessage(connection, redacting: secret) ?? "no result from the server",
                                 connectionBroken: true)
        }
        func field(_ code: Int32) -> String? {
            guard let raw = PQresultErrorField(result, code) else { return nil }
            return redact(String(cString: raw), secret)
        }
        let sqlState = field(stylist_pq_diag_sqlstate())
        let primary = field(stylist_pq_diag_message_primary())
            ?? PQresultErrorMessage(result).map { redact(trimmed(String(cString: $0)), secret) }
        let message = primary.flatMap { $0.isEmpty ? nil : $0 }
            ?? connectionMessage(connection, redacting: secret) ?? "statement failed"
        let lost = broken || meansConnectionLost(sqlState)
        return PostgresError(kind: sqlState == nil && lost ? .connection : .server, message: message,
                             sqlState: sqlState, detail: field(stylist_pq_diag_message_detail()),
                             constraint: field(stylist_pq_diag_constraint_name()), connectionBroken: lost)
    }

    /// libpq's last message for a connection, trimmed and with the secret removed.
    static func connectionMessage(_ connection: OpaquePointer?, redacting secret: String?) -> String? {
        guard let connection, let raw = PQerrorMessage(connection) else { return nil }
        let text = trimmed(String(cString: raw))
        return text.isEmpty ? nil : redact(text, secret)
    }

    static func redact(_ text: String, _ secret: String?) -> String {
        guard let secret, !secret.isEmpty else { return text }
        return text.replacingOccurrences(of: secret, with: "***")
    }

    static func trimmed(_ text: String) -> String {
        text.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
