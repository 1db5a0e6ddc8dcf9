#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// Spool files: request bodies and multipart parts too large to keep in memory go to files in the
// spool directory (BodySink.swift, MultipartStreamParser).

/// A failed write to a spool file, with its errno value (ENOSPC: the disk is full).
public struct SpoolError: Error, CustomStringConvertible {
    public var description: String
    public var code: Int32
}

/// Creates an empty file with a unique name in `directory`; returns its descriptor and path.
func createSpoolFile(directory: String, prefix: String) throws -> (Int32, String) {
    var template = Array((directory.hasSuffix("/") ? directory : directory + "/").utf8) + Array((prefix + "XXXXXX").utf8) + [0]
    let fd = template.withUnsafeMutableBufferPointer { p in
        p.baseAddress!.withMemoryRebound(to: CChar.self, capacity: p.count) { mkstemp($0) }
    }
    if fd >= 0 { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
    guard fd >= 0 else {
        throw MultipartError.io("cannot create a spool file: \(String(cString: strerror(errno)))", code: errno)
    }
    return (fd, String(decoding: template.dropLast(), as: UTF8.self))
}

func writeFully(fd: Int32, _ data: ArraySlice<UInt8>) throws {
    try data.withUnsafeBytes { raw in
        var offset = 0
        while offset < raw.count {
            let n = write(fd, raw.baseAddress! + offset, raw.count - offset)
            if n < 0 {
                if errno == EINTR { continue }
                throw SpoolError(description: "write failed: \(String(cString: strerror(errno)))", code: errno)
            }
            offset += n
        }
    }
}
