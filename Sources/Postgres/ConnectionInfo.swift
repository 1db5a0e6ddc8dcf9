import Foundation
import CLibPQ

/// What a connection URL says, read by libpq's own parser so every form libpq accepts is understood.
struct ConnectionInfo {
    let url: String
    let options: [String: String]

    /// Parses `url` (or a `key=value` conninfo string); a malformed one throws without echoing it.
    init(url: String) throws {
        self.url = url
        var errorMessage: UnsafeMutablePointer<CChar>?
        guard let parsed = PQconninfoParse(url, &errorMessage) else {
            let reason = errorMessage.map { String(cString: $0) } ?? "out of memory"
            if let errorMessage { PQfreemem(errorMessage) }
            // libpq's message can quote the URL, password included; name only the problem's kind.
            let safe = reason.contains("invalid") ? "the database URL is malformed" : "cannot parse the database URL"
            throw PostgresError(kind: .usage, message: safe)
        }
        defer { PQconninfoFree(parsed) }
        var options: [String: String] = [:]
        var option = parsed
        while let keyword = option.pointee.keyword {
            if let value = option.pointee.val { options[String(cString: keyword)] = String(cString: value) }
            option += 1
        }
        self.options = options
    }

    /// The password given in the URL, removed from every message this client produces.
    var password: String? { options["password"] }

    /// `postgres://user@host:port/db` with no password and no query: safe for logs.
    var redacted: String {
        var text = "postgres://"
        if let user = options["user"] { text += "\(user)@" }
        text += options["host"] ?? options["hostaddr"] ?? "localhost"
        if let port = options["port"] { text += ":\(port)" }
        if let db = options["dbname"] { text += "/\(db)" }
        return text
    }

    /// Settings applied unless the URL sets them: a bounded connect, and keepalives that notice a
    /// vanished server within about a minute rather than the kernel's two hours.
    static let defaults: [(String, String)] = [
        ("connect_timeout", "10"),
        ("application_name", "stylist"),
        ("keepalives", "1"),
        ("keepalives_idle", "15"),
        ("keepalives_interval", "5"),
        ("keepalives_count", "3"),
        ("tcp_user_timeout", "30000"),
    ]

    /// Opens a blocking libpq connection: defaults first, then the URL, whose settings win.
    func connect(overriding extra: [(String, String)] = []) -> OpaquePointer? {
        let pairs = ConnectionInfo.defaults + extra + [("dbname", url)]
        var keywordStorage: [UnsafeMutablePointer<CChar>?] = pairs.map { strdup($0.0) }
        var valueStorage: [UnsafeMutablePointer<CChar>?] = pairs.map { strdup($0.1) }
        defer {
            keywordStorage.forEach { free($0) }
            valueStorage.forEach { free($0) }
        }
        keywordStorage.append(nil)
        valueStorage.append(nil)
        return keywordStorage.withUnsafeBufferPointer { keywords in
            valueStorage.withUnsafeBufferPointer { values in
                keywords.baseAddress!.withMemoryRebound(to: UnsafePointer<CChar>?.self, capacity: keywords.count) { k in
                    values.baseAddress!.withMemoryRebound(to: UnsafePointer<CChar>?.self, capacity: values.count) { v in
                        PQconnectdbParams(k, v, 1)
                    }
                }
            }
        }
    }
}
