import Foundation

/// An error from a failed file operation that keeps its errno value, so the answer can tell a
/// full disk (507) from other failures (500).
public protocol ErrnoCarrying: Error {
    /// The errno of the failed operation.
    var errnoCode: Int32 { get }
}

extension SpoolError: ErrnoCarrying {
    public var errnoCode: Int32 { code }
}

extension MultipartError: ErrnoCarrying {
    public var errnoCode: Int32 {
        if case .io(_, let code) = self { return code }
        return 0
    }
}

extension HTTPParserError {
    /// The answer to a failed write or read of the server's own storage: 507 when the disk is full
    /// (ENOSPC, EDQUOT), else 500. The detail never names a path (the log line has the error).
    public static func storageFailure(_ error: Error) -> HTTPParserError {
        let code = (error as? ErrnoCarrying)?.errnoCode ?? 0
        if code == ENOSPC || code == EDQUOT {
            return HTTPParserError(status: 507, detail: "The server has no room to store this request now; retry later.")
        }
        return HTTPParserError(status: 500, detail: "The server could not store the request.")
    }
}
