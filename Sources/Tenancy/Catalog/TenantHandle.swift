import Database
import EventLog
import Foundation

/// The way to one tenant's data: its catalog record, its log and its sessions.
///
/// Every tenant-scoped read or write goes through a handle from `Catalog.handle(for:)`, so that
/// callers never decide where a tenant lives: the sessions it hands out are where placement
/// (shared tables, a schema or a database of its own) is resolved.
public struct TenantHandle: Sendable {
    public let tenant: TenantRecord
    public let store: EventStore

    /// A unit of work in the tenant (see `TenantDatabase.withTenant`).
    public func withTenant<Result>(
        isolation: isolated (any Actor)? = #isolation,
        _ body: (TenantSession) async throws -> sending Result
    ) async throws -> sending Result {
        try await store.database.withTenant(tenant.id, isolation: isolation, body)
    }

    /// Reads in the tenant (see `TenantDatabase.readTenant`).
    public func readTenant<Result>(
        isolation: isolated (any Actor)? = #isolation,
        _ body: (TenantSession) async throws -> sending Result
    ) async throws -> sending Result {
        try await store.database.readTenant(tenant.id, isolation: isolation, body)
    }
}
