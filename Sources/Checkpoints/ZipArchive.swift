/// A read-only zip archive in memory (torch >= 1.6 checkpoints): the central directory, zip64
/// included, and stored entries checked against their CRC-32 when one is recorded. Compressed
/// entries are refused: `torch.save` always stores, so they only come from re-packing by hand.
struct ZipArchive {
    /// One file of the archive.
    struct Entry {
        let name: String
        let method: Int
        let compressedSize: Int
        let size: Int
        let crc: UInt32
        let localHeaderOffset: Int
    }

    let name: String
    let bytes: [UInt8]
    /// Entries in central-directory order.
    let entries: [Entry]

    static func isZip(_ bytes: [UInt8]) -> Bool {
        bytes.count >= 4 && bytes[0] == 0x50 && bytes[1] == 0x4B && bytes[2] == 0x03 && bytes[3] == 0x04
    }

    init(_ bytes: [UInt8], name: String) throws {
        self.name = name
        self.bytes = bytes
        func bad(_ what: String) -> CheckpointError { CheckpointError("\(name): corrupt zip archive (\(what))") }
        // The end-of-central-directory record is in the last 22 + 65535 (comment) bytes.
        var eocd = -1
        var i = bytes.count - 22
        while i >= max(0, bytes.count - 22 - 65535) {
            if readLE(bytes, at: i, width: 4) == 0x0605_4B50 { eocd = i; break }
            i -= 1
        }
        guard eocd >= 0, var count = readLE(bytes, at: eocd + 10, width: 2), var cdOffset = readLE(bytes, at: eocd + 16, width: 4) else {
            throw bad("no end of central directory")
        }
        if count == 0xFFFF || cdOffset == 0xFFFF_FFFF {
            // Zip64: the locator sits just before the classic record and points at the zip64 record.
            guard readLE(bytes, at: eocd - 20, width: 4) == 0x0706_4B50, let z = readLE(bytes, at: eocd - 12, width: 8),
                  readLE(bytes, at: z, width: 4) == 0x0606_4B50, let n = readLE(bytes, at: z + 32, width: 8),
                  let off = readLE(bytes, at: z + 48, width: 8) else { throw bad("bad zip64 end of central directory") }
            count = n
            cdOffset = off
        }
        var cursor = ByteCursor(bytes, from: cdOffset, name: name)
        guard cdOffset <= bytes.count, count <= bytes.count / 46 else { throw bad("central directory out of range") }
        var entries: [Entry] = []
        for _ in 0..<count {
            guard try cursor.u32("central directory entry") == 0x0201_4B50 else { throw bad("bad central directory entry") }
            try cursor.skip(6, "central directory entry")
            let method = try cursor.u16("compression method")
            try cursor.skip(4, "central directory entry")
            let crc = UInt32(try cursor.u32("CRC-32"))
            var compressed = try cursor.u32("compressed size"), size = try cursor.u32("size")
            let nameLength = try cursor.u16("name length"), extraLength = try cursor.u16("extra length")
            let commentLength = try cursor.u16("comment length")
            try cursor.skip(8, "central directory entry")
            var offset = try cursor.u32("local header offset")
            let entryName = String(decoding: try cursor.take(nameLength, "entry name"), as: UTF8.self)
            var extra = ByteCursor(bytes, from: cursor.position, end: cursor.position + extraLength, name: name)
            try cursor.skip(extraLength + commentLength, "extra field")
            // Zip64 sizes and offset replace the fields that are all ones, in this order.
            while extra.remaining >= 4 {
                let id = try extra.u16("extra id"), length = try extra.u16("extra length")
                var field = ByteCursor(bytes, from: extra.position, end: extra.position + length, name: name)
                try extra.skip(length, "extra field")
                guard id == 0x0001 else { continue }
                if size == 0xFFFF_FFFF { size = try field.u64("zip64 size") }
                if compressed == 0xFFFF_FFFF { compressed = try field.u64("zip64 compressed size") }
                if offset == 0xFFFF_FFFF { offset = try field.u64("zip64 offset") }
            }
            entries.append(Entry(name: entryName, method: method, compressedSize: compressed, size: size, crc: crc, localHeaderOffset: offset))
        }
        self.entries = entries
    }

    func entry(named n: String) -> Entry? { entries.first { $0.name == n } }

    /// The entry's bytes as a range of `bytes`, after checking its local header, method and CRC-32.
    func dataRange(of e: Entry) throws -> Range<Int> {
        guard e.method == 0 else {
            throw CheckpointError("\(name): zip entry \(e.name) is compressed (method \(e.method)); only stored entries are supported, as torch.save writes them")
        }
        guard e.compressedSize == e.size else { throw CheckpointError("\(name): zip entry \(e.name): stored sizes differ") }
        var cursor = ByteCursor(bytes, from: e.localHeaderOffset, name: name)
        guard e.localHeaderOffset <= bytes.count, try cursor.u32("local header") == 0x0403_4B50 else {
            throw CheckpointError("\(name): corrupt zip archive (bad local header of \(e.name))")
        }
        try cursor.skip(22, "local header")
        let nameLength = try cursor.u16("name length"), extraLength = try cursor.u16("extra length")
        try cursor.skip(nameLength + extraLength, "local header of \(e.name)")
        let r = try cursor.range(e.size, "data of \(e.name)")
        // torch >= 2.6 can save with checksums off (`compute_crc32=False`), which writes 0: nothing to check then.
        guard e.crc == 0 || CRC32.checksum(bytes[r]) == e.crc else { throw CheckpointError("\(name): zip entry \(e.name) fails its CRC-32 check (corrupt file)") }
        return r
    }
}

/// CRC-32 (IEEE 802.3, as zip uses).
enum CRC32 {
    static let table: [UInt32] = (0..<256).map { n -> UInt32 in
        var c = UInt32(n)
        for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    static func checksum(_ data: ArraySlice<UInt8>) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in data { c = table[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8) }
        return c ^ 0xFFFF_FFFF
    }
}
