/// The one error type of the `Database` module.
///
/// `description` is safe to show to an operator: it never contains passwords or bound values.
public struct DatabaseError: Error, CustomStringConvertible, CustomDebugStringConvertible, Sendable, Equatable {
    public enum Code: String, Sendable, CaseIterable {
        case invalidURL = "invalid_url"
        case binariesNotFound = "postgres_binaries_not_found"
        case directoryNotUsable = "directory_not_usable"
        case clusterFailed = "cluster_failed"
        case unreachable = "database_unreachable"
        case invalidMigration = "invalid_migration"
        case migrationChanged = "migration_changed"
        case migrationMissing = "migration_missing"
        case migrationFailed = "migration_failed"
        case sessionClosed = "session_closed"
        case unsafeRole = "unsafe_role"
        case tenantBehind = "tenant_behind"
        case tenantMoving = "tenant_moving"
        /// Too much work was waiting for the server to start this in time (`ReadGate`).
        case busy = "database_busy"
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }

    /// For logs: the code and the message.
    public var debugDescription: String { "DatabaseError.\(code.rawValue): \(message)" }
}
