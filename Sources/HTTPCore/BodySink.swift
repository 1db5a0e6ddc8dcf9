#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A request body being received: in memory up to a threshold, then spooled to a file.
final class BodySink {
    let threshold: Int
    let directory: String
    var memory: [UInt8] = []
    var fd: Int32 = -1
    var path: String?
    var length = 0

    init(threshold: Int, directory: String, expectedLength: Int?) throws {
        self.threshold = threshold
        self.directory = directory
        if let expected = expectedLength {
            if expected > threshold { try spool() } else { memory.reserveCapacity(expected) }
        }
    }

    private func spool() throws {
        let (fd, path) = try createSpoolFile(directory: directory, prefix: "stylist-body-")
        self.fd = fd
        self.path = path
        if !memory.isEmpty {
            try writeFully(fd: fd, memory[...])
            memory = []
        }
    }

    func append(_ bytes: [UInt8]) throws {
        length += bytes.count
        if fd < 0 && memory.count + bytes.count > threshold { try spool() }
        if fd >= 0 { try writeFully(fd: fd, bytes[...]) } else { memory.append(contentsOf: bytes) }
    }

    /// The finished body; a spooled file is closed and handed over (its path is still `path`).
    func finish() -> HTTPBody {
        if fd >= 0 {
            Glibc.close(fd)
            fd = -1
            return .file(path: path!, length: length)
        }
        return memory.isEmpty ? .empty : .bytes(memory)
    }

    /// Closes and deletes a spool file.
    func discard() {
        if fd >= 0 { Glibc.close(fd); fd = -1 }
        if let path { unlink(path) }
        path = nil
        memory = []
    }
}
