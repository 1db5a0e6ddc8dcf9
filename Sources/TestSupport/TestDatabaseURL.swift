import Foundation
import XCTest

/// The one rule for tests that need PostgreSQL: the server is STYLIST_TEST_DATABASE_URL (see
/// .ci/postgres); without it a test skips, except under CI or STYLIST_REQUIRE_DATABASE=1,
/// where a missing database is a failure.
public enum TestDatabaseURL {
    /// A required database is missing.
    public struct Missing: Error, CustomStringConvertible {
        public let description: String
    }

    /// True when a missing database must fail the test instead of skipping it.
    public static var isRequired: Bool {
        let environment = ProcessInfo.processInfo.environment
        return environment["CI"] != nil || environment["STYLIST_REQUIRE_DATABASE"] == "1"
    }

    /// Throws `Missing` when required, else `XCTSkip`, explaining `what` is absent.
    public static func unavailable(_ what: String) -> Error {
        isRequired ? Missing(description: "\(what), and CI / STYLIST_REQUIRE_DATABASE=1 requires it (source .ci/postgres)")
            : XCTSkip("\(what) (source .ci/postgres)")
    }

    /// The test server's URL.
    public static func url() throws -> String {
        if let url = ProcessInfo.processInfo.environment["STYLIST_TEST_DATABASE_URL"], !url.isEmpty { return url }
        throw unavailable("STYLIST_TEST_DATABASE_URL is not set")
    }
}
