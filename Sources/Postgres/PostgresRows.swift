import CLibPQ
import Foundation

/// The rows of one statement's result (text format), owning the libpq result until released.
public final class PostgresRows: RandomAccessCollection, @unchecked Sendable {
    private let result: OpaquePointer
    /// Number of rows returned.
    public let count: Int
    /// Column names in result order.
    public let columnNames: [String]
    private let columnIndex: [String: Int]

    init(result: OpaquePointer) {
        self.result = result
        count = Int(PQntuples(result))
        let columns = Int(PQnfields(result))
        columnNames = (0..<columns).map { String(cString: PQfname(result, Int32($0))) }
        var index: [String: Int] = [:]
        for (position, name) in columnNames.enumerated() where index[name] == nil { index[name] = position }
        columnIndex = index
    }

    deinit { PQclear(result) }

    public var startIndex: Int { 0 }
    public var endIndex: Int { count }
    public subscript(position: Int) -> PostgresRow { PostgresRow(rows: self, index: position) }

    /// Rows an INSERT/UPDATE/DELETE touched (PQcmdTuples), or 0 for other statements.
    public var affectedRows: Int {
        Int(String(cString: PQcmdTuples(result))) ?? 0
    }

    /// Position of the column called `name`; a name the result lacks throws.
    public func column(_ name: String) throws -> Int {
        guard let position = columnIndex[name] else {
            throw PostgresError(kind: .decoding, message: "no column \"\(name)\" in the result")
        }
        return position
    }

    /// Raw text of one cell, or nil for NULL.
    func text(row: Int, column: Int) throws -> String? {
        guard row >= 0, row < count, column >= 0, column < columnNames.count else {
            throw PostgresError(kind: .decoding, message: "cell (\(row), \(column)) is outside the result")
        }
        if PQgetisnull(result, Int32(row), Int32(column)) != 0 { return nil }
        return String(cString: PQgetvalue(result, Int32(row), Int32(column)))
    }

    /// One cell's bytea (hex or escape text form) decoded, or nil for NULL.
    func bytes(row: Int, column: Int) throws -> [UInt8]? {
        guard try text(row: row, column: column) != nil else { return nil }
        var length = 0
        guard let raw = PQgetvalue(result, Int32(row), Int32(column)),
              let decoded = raw.withMemoryRebound(to: UInt8.self, capacity: 1, { PQunescapeBytea($0, &length) })
        else { throw PostgresError(kind: .decoding, message: "column \(columnNames[column]) is not bytea") }
        defer { PQfreemem(decoded) }
        return Array(UnsafeBufferPointer(start: decoded, count: length))
    }
}

/// One row of a `PostgresRows`; typed accessors by column position or name, NULL as nil.
public struct PostgresRow {
    let rows: PostgresRows
    /// This row's position in its result.
    public let index: Int

    /// The cell as text (any type, in PostgreSQL's text form).
    public func string(_ column: Int) throws -> String? { try rows.text(row: index, column: column) }
    public func string(_ name: String) throws -> String? { try string(rows.column(name)) }

    /// The cell as an integer (smallint, integer, bigint).
    public func int64(_ column: Int) throws -> Int64? { try decode(column, "an integer") { Int64($0) } }
    public func int64(_ name: String) throws -> Int64? { try int64(rows.column(name)) }

    /// The cell as an `Int` (smallint, integer, bigint).
    public func int(_ column: Int) throws -> Int? { try decode(column, "an integer") { Int($0) } }
    public func int(_ name: String) throws -> Int? { try int(rows.column(name)) }

    /// The cell as a double (real, double precision, numeric, integers).
    public func double(_ column: Int) throws -> Double? { try decode(column, "a number") { Double($0) } }
    public func double(_ name: String) throws -> Double? { try double(rows.column(name)) }

    /// The cell as a boolean (`t`/`f`).
    public func bool(_ column: Int) throws -> Bool? {
        try decode(column, "a boolean") { $0 == "t" ? true : $0 == "f" ? false : nil }
    }
    public func bool(_ name: String) throws -> Bool? { try bool(rows.column(name)) }

    /// The cell's bytea, decoded to raw bytes.
    public func bytes(_ column: Int) throws -> [UInt8]? { try rows.bytes(row: index, column: column) }
    public func bytes(_ name: String) throws -> [UInt8]? { try bytes(rows.column(name)) }

    /// The cell as a date (timestamptz, timestamp taken as UTC, or date at UTC midnight), ISO DateStyle.
    public func date(_ column: Int) throws -> Date? { try decode(column, "a timestamp") { PostgresTimestamp.parse($0) } }
    public func date(_ name: String) throws -> Date? { try date(rows.column(name)) }

    private func decode<T>(_ column: Int, _ what: String, _ read: (String) -> T?) throws -> T? {
        guard let text = try rows.text(row: index, column: column) else { return nil }
        guard let value = read(text) else {
            throw PostgresError(kind: .decoding, message: "column \(rows.columnNames[column]) is not \(what)")
        }
        return value
    }
}
