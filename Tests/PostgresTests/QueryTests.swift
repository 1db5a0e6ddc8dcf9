import Foundation
import XCTest
import Postgres

final class QueryTests: XCTestCase {
    var schema: TestSchema!

    override func setUpWithError() throws { schema = try TestSchema() }
    override func tearDown() { schema?.drop() }

    func testParametersRoundTripEveryKind() throws {
        let connection = try schema.connect()
        let blob: [UInt8] = [0, 1, 0, 255, 92, 120, 0] // zero bytes, a backslash and an 'x'
        let when = Date(timeIntervalSince1970: 1_764_540_000.123456)
        let rows = try connection.query(
            "SELECT $1::text AS t, $2::bigint AS i, $3::bytea AS b, $4::text AS n, $5::float8 AS d, $6::bool AS f, $7::timestamptz AS w, $8::bytea AS e",
            [.text("héllo ✓ 世界 🎨"), .int(-9_007_199_254_740_993), .bytes(blob), nil, .double(0.1), .bool(true), .date(when), .bytes([])])
        XCTAssertEqual(rows.count, 1)
        let row = rows[0]
        XCTAssertEqual(try row.string("t"), "héllo ✓ 世界 🎨")
        XCTAssertEqual(try row.int64("i"), -9_007_199_254_740_993)
        XCTAssertEqual(try row.bytes("b"), blob)
        XCTAssertNil(try row.string("n"))
        XCTAssertNil(try row.int64("n"))
        XCTAssertEqual(try row.double("d"), 0.1)
        XCTAssertEqual(try row.bool("f"), true)
        let back = try XCTUnwrap(row.date("w"))
        XCTAssertEqual(back.timeIntervalSince1970, when.timeIntervalSince1970, accuracy: 1e-6)
        XCTAssertEqual(try row.bytes("e"), [])
        XCTAssertEqual(try row.string(0), try row.string("t"))
    }

    func testTextParametersTakeTheirTypeFromContext() throws {
        let connection = try schema.connect()
        try connection.execute("CREATE TABLE typed (id uuid PRIMARY KEY, doc jsonb, at timestamptz, n integer)")
        let id = UUID().uuidString.lowercased()
        try connection.query("INSERT INTO typed VALUES ($1, $2, $3, $4)",
                             [.text(id), .text(#"{"a": [1, 2]}"#), .text("2026-01-02 03:04:05+01"), .int(7)])
        let row = try connection.query("SELECT id, doc->'a'->>1 AS second, at, n FROM typed WHERE id = $1", [.text(id)])[0]
        XCTAssertEqual(try row.string("id"), id)
        XCTAssertEqual(try row.int("second"), 2)
        XCTAssertEqual(try row.date("at"), Date(timeIntervalSince1970: 1_767_319_445))
        XCTAssertEqual(try row.int("n"), 7)
    }

    func testUniqueViolationCarriesItsSQLState() throws {
        let connection = try schema.connect()
        try connection.execute("CREATE TABLE keys (key text CONSTRAINT keys_pk PRIMARY KEY)")
        try connection.query("INSERT INTO keys VALUES ($1)", [.text("a")])
        XCTAssertThrowsError(try connection.query("INSERT INTO keys VALUES ($1)", [.text("a")])) { error in
            let failure = error as? PostgresError
            XCTAssertEqual(failure?.kind, .server)
            XCTAssertEqual(failure?.sqlState, "23505")
            XCTAssertEqual(failure?.constraint, "keys_pk")
            XCTAssertEqual(failure?.isUniqueViolation, true)
            XCTAssertEqual(failure?.connectionBroken, false)
        }
        XCTAssertEqual(try connection.query("SELECT count(*) FROM keys")[0].int(0), 1, "the connection stays usable")
    }

    func testTransactionRollsBackWhenTheBodyThrows() throws {
        let connection = try schema.connect()
        try connection.execute("CREATE TABLE items (n integer)")
        struct Abort: Error {}
        XCTAssertThrowsError(try connection.transaction { connection in
            try connection.query("INSERT INTO items VALUES ($1)", [.int(1)])
            throw Abort()
        }) { XCTAssertTrue($0 is Abort) }
        XCTAssertFalse(connection.isInTransaction)
        let committed = try connection.transaction { connection -> Int in
            try connection.query("INSERT INTO items VALUES ($1), ($2)", [.int(2), .int(3)]).affectedRows
        }
        XCTAssertEqual(committed, 2)
        let values = try connection.query("SELECT n FROM items ORDER BY n").map { try $0.int(0) }
        XCTAssertEqual(values, [2, 3])
    }

    func testNestedTransactionUndoesOnlyItsOwnWork() throws {
        let connection = try schema.connect()
        try connection.execute("CREATE TABLE nested (n integer)")
        struct Abort: Error {}
        try connection.transaction { outer in
            try outer.query("INSERT INTO nested VALUES (1)")
            XCTAssertThrowsError(try outer.transaction { inner in
                try inner.query("INSERT INTO nested VALUES (2)")
                throw Abort()
            })
            try outer.transaction { try $0.query("INSERT INTO nested VALUES (3)") }
            XCTAssertTrue(outer.isInTransaction, "the inner calls neither commit nor end the outer transaction")
        }
        XCTAssertEqual(try connection.query("SELECT n FROM nested ORDER BY n").map { try $0.int(0) }, [1, 3])
    }

    func testTextWithANulCharacterIsRefusedRatherThanCut() throws {
        let connection = try schema.connect()
        XCTAssertThrowsError(try connection.query("SELECT $1::text", [.text("ab\u{0}cd")])) {
            XCTAssertEqual(($0 as? PostgresError)?.kind, .usage)
        }
    }

    func testTimestampWithoutZoneIsUTCWhateverTheServerZone() throws {
        // The session starts in New York time (as a server default would make it); the client sets UTC.
        let base = try TestDatabase.url()
        let fresh = try PostgresConnection(url: base + (base.contains("?") ? "&" : "?") + "options=-c%20TimeZone%3DAmerica/New_York")
        let when = Date(timeIntervalSince1970: 1_767_319_445)
        let row = try fresh.query("SELECT $1::timestamp AS plain, $1::timestamptz AS zoned, now()::text AS now", [.date(when)])[0]
        XCTAssertEqual(try row.date("plain"), when)
        XCTAssertEqual(try row.date("zoned"), when)
        XCTAssertTrue(try XCTUnwrap(row.string("now")).hasSuffix("+00"))
    }

    func testExecuteRunsSeveralStatements() throws {
        let connection = try schema.connect()
        try connection.execute("CREATE TABLE a (n int); INSERT INTO a VALUES (1); INSERT INTO a VALUES (2)")
        XCTAssertEqual(try connection.query("SELECT sum(n) FROM a")[0].int(0), 3)
    }

    func testMisreadColumnsThrowInsteadOfReadingAsNull() throws {
        let connection = try schema.connect()
        let row = try connection.query("SELECT 'abc'::text AS word")[0]
        XCTAssertThrowsError(try row.int("word")) { XCTAssertEqual(($0 as? PostgresError)?.kind, .decoding) }
        XCTAssertThrowsError(try row.string("missing")) { XCTAssertEqual(($0 as? PostgresError)?.kind, .decoding) }
        XCTAssertThrowsError(try row.string(5)) { XCTAssertEqual(($0 as? PostgresError)?.kind, .decoding) }
    }

    func testPasswordNeverAppearsInDescriptionsOrErrors() throws {
        let base = try TestDatabase.url()
        let secret = "s3cr3t-Pa55word"
        let withPassword = base.replacingOccurrences(of: "postgres://postgres@", with: "postgres://postgres:\(secret)@")
        XCTAssertNotEqual(withPassword, base, "the test URL has the form .ci/postgres gives")
        XCTAssertFalse(PostgresConnection.redacted(url: withPassword).contains(secret))
        let connection = try PostgresConnection(url: withPassword) // trust auth ignores the password
        XCTAssertFalse(connection.description.contains(secret))
        XCTAssertFalse("\(connection)".contains(secret))
        // A refused connection: port 1 on loopback has no server.
        let unreachable = "postgres://postgres:\(secret)@127.0.0.1:1/stylist_test?connect_timeout=2"
        XCTAssertThrowsError(try PostgresConnection(url: unreachable)) { error in
            XCTAssertEqual((error as? PostgresError)?.kind, .connection)
            XCTAssertEqual((error as? PostgresError)?.connectionBroken, true)
            XCTAssertFalse("\(error)".contains(secret))
        }
        XCTAssertThrowsError(try PostgresConnection(url: "postgres://postgres:\(secret)@127.0.0.1:notaport/x")) { error in
            XCTAssertFalse("\(error)".contains(secret))
        }
    }

    func testTerminatedBackendIsReportedAsBroken() throws {
        let name = TestDatabase.uniqueName("victim")
        let victim = try PostgresConnection(url: TestDatabase.url(applicationName: name))
        let admin = try schema.connect()
        try TestDatabase.terminateSessions(applicationName: name, using: admin)
        XCTAssertThrowsError(try victim.query("SELECT 1")) { error in
            XCTAssertEqual((error as? PostgresError)?.connectionBroken, true, "\(error)")
        }
        XCTAssertFalse(victim.isConnected)
    }
}
