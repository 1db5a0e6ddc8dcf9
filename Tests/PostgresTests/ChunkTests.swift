import Foundation
import XCTest
import Postgres

final class ChunkTests: XCTestCase {
    var schema: TestSchema!
    var directory: URL!

    override func setUpWithError() throws {
        schema = try TestSchema()
        directory = FileManager.default.temporaryDirectory.appendingPathComponent(TestDatabase.uniqueName("chunks"))
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDown() {
        schema?.drop()
        if let directory { try? FileManager.default.removeItem(at: directory) }
    }

    private func makeTable(_ connection: PostgresConnection) throws {
        try connection.execute("""
            CREATE TABLE blob_chunks (job_id text, name text, seq integer, data bytea NOT NULL,
                                      PRIMARY KEY (job_id, name, seq))
            """)
    }

    private let insert = "INSERT INTO blob_chunks (job_id, name, seq, data) VALUES ($1, $2, $3, $4)"
    private let select = "SELECT data FROM blob_chunks WHERE job_id = $1 AND name = $2 ORDER BY seq"

    func testFiveMegabyteFileRoundTripsThroughOneMebibyteChunks() throws {
        let connection = try schema.connect()
        try makeTable(connection)
        let original = try XCTUnwrap(FileHandle(forReadingAtPath: "/dev/urandom")?.readData(ofLength: 5_000_000))
        XCTAssertEqual(original.count, 5_000_000)
        let source = directory.appendingPathComponent("in.bin")
        try original.write(to: source)

        let written = try connection.transaction { connection in
            try connection.writeChunks(from: source, insertSQL: insert, keyParams: [.text("job1"), .text("content")])
        }
        XCTAssertEqual(written, 5_000_000)
        let layout = try connection.query("SELECT count(*), max(octet_length(data)), min(seq), max(seq) FROM blob_chunks")[0]
        XCTAssertEqual(try layout.int(0), 5)
        XCTAssertEqual(try layout.int(1), PostgresConnection.defaultChunkSize)
        XCTAssertEqual(try layout.int(2), 0)
        XCTAssertEqual(try layout.int(3), 4)

        let destination = directory.appendingPathComponent("out.bin")
        let read = try connection.readChunks(selectSQL: select, keyParams: [.text("job1"), .text("content")], to: destination)
        XCTAssertEqual(read, 5_000_000)
        XCTAssertEqual(try Data(contentsOf: destination), original)
    }

    func testEmptyFileWritesNoRowsAndReadsBackEmpty() throws {
        let connection = try schema.connect()
        try makeTable(connection)
        let source = directory.appendingPathComponent("empty.bin")
        try Data().write(to: source)
        XCTAssertEqual(try connection.writeChunks(from: source, insertSQL: insert, keyParams: [.text("j"), .text("e")]), 0)
        let destination = directory.appendingPathComponent("empty.out")
        XCTAssertEqual(try connection.readChunks(selectSQL: select, keyParams: [.text("j"), .text("e")], to: destination), 0)
        XCTAssertEqual(try Data(contentsOf: destination), Data())
    }

    func testAFailingConsumerStopsTheReadAndLeavesTheConnectionUsable() throws {
        let connection = try schema.connect()
        try makeTable(connection)
        let pattern = (0..<(3 * 1024 + 5)).map { UInt8(truncatingIfNeeded: $0 * 7) }
        var offset = 0
        try connection.writeChunks(insertSQL: insert, keyParams: [.text("j"), .text("r")], chunkSize: 1024) { buffer in
            let count = min(buffer.count, pattern.count - offset)
            buffer.copyBytes(from: pattern[offset..<offset + count])
            offset += count
            return count
        }
        XCTAssertEqual(try connection.query("SELECT count(*) FROM blob_chunks")[0].int(0), 4)

        struct Full: Error {}
        var delivered = 0
        XCTAssertThrowsError(try connection.readChunks(selectSQL: select, keyParams: [.text("j"), .text("r")]) { _ in
            delivered += 1
            if delivered == 2 { throw Full() }
        }) { XCTAssertTrue($0 is Full, "\($0)") }
        XCTAssertEqual(delivered, 2, "no chunk is delivered after the consumer fails")
        XCTAssertEqual(try connection.query("SELECT 41 + 1")[0].int(0), 42)

        var collected: [UInt8] = []
        try connection.readChunks(selectSQL: select, keyParams: [.text("j"), .text("r")]) { collected += $0 }
        XCTAssertEqual(collected, pattern)
    }

    func testReadingANonByteaColumnIsRefused() throws {
        let connection = try schema.connect()
        XCTAssertThrowsError(try connection.readChunks(selectSQL: "SELECT 'x'::text", keyParams: []) { _ in }) {
            XCTAssertEqual(($0 as? PostgresError)?.kind, .usage)
        }
        XCTAssertEqual(try connection.query("SELECT 1")[0].int(0), 1)
    }
}
