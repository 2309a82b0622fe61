import Database
import EventLog
import Foundation
import Logging
import PostgresNIO

/// The way to a tenant's data: which pool (database), which schema, which log.
///
/// Every tenant-scoped read or write goes through a handle from `Catalog.handle(for:)`, so that
/// callers never decide where a tenant lives: the shared tables, a schema of its own or (later)
/// a database of its own all look the same from here.
public struct TenantHandle: Sendable {
    public let tenant: TenantRecord
    public let client: PostgresClient
    public let store: EventStore
    /// The schema holding the tenant's read models; nil for the shared placement.
    public let schema: String?

    /// A transaction entered into the tenant (row-level security on, its schema first on the path).
    public func withTransaction<Result>(
        logger: Logger,
        isolation: isolated (any Actor)? = #isolation,
        _ body: (PostgresConnection) async throws -> sending Result
    ) async throws -> sending Result {
        try await client.withTenantTransaction(tenant.id.rawValue, logger: logger, isolation: isolation) { connection in
            if let schema {
                // The schema name comes from the catalog, which only ever stores t_<hex> names.
                try await connection.execute("SELECT set_config('search_path', \(schema + ", public"), true)", logger: logger)
            }
            return try await body(connection)
        }
    }
}
