import Database
import Foundation
import Logging
import PostgresNIO

/// Reads of the platform's security log (cross-tenant attempts, unknown tenants).
public struct SecurityEventQueries: Sendable {
    let client: PostgresClient
    let logger: Logger

    /// One row of the log: repeats of an attempt within a minute, counted.
    public struct Record: Sendable {
        public let id: Int64
        public let kind: String
        public let windowStart: Date
        public let firstSeen: Date
        public let lastSeen: Date
        public let attempts: Int
        public let actorTenant: TenantID?
        public let actorKey: UUID?
        public let targetTenant: TenantID?
        public let targetSlug: String?
        public let method: String
        public let route: String
        public let clientAddress: String?
        public let requestID: String?
    }

    /// Rows with an id below `before`, newest first: of one kind, and made by or against one
    /// tenant, when given.
    public func page(before: Int64, kind: String?, involving tenant: TenantID?, limit: Int) async throws -> [Record] {
        try await fetch("""
            SELECT \(unescaped: Self.columns) FROM security_events
             WHERE id < \(before) AND (\(kind == nil) OR kind = \(kind ?? ""))
               AND (\(tenant == nil) OR target_tenant = \(tenant) OR actor_tenant = \(tenant))
             ORDER BY id DESC LIMIT \(limit)
            """)
    }

    /// Attempts against `tenant`, newest first.
    public func attempts(against tenant: TenantID, before: Int64, limit: Int) async throws -> [Record] {
        try await fetch("""
            SELECT \(unescaped: Self.columns) FROM security_events
             WHERE target_tenant = \(tenant) AND id < \(before) ORDER BY id DESC LIMIT \(limit)
            """)
    }

    static let columns = """
        id, kind, window_start, first_seen, last_seen, attempts, actor_tenant, actor_key, target_tenant, target_slug,
        method, route, client_address, request_id
        """

    private func fetch(_ query: PostgresQuery) async throws -> [Record] {
        var records: [Record] = []
        let rows = try await client.query(query, logger: logger)
        for try await row in rows.decode((Int64, String, Date, Date, Date, Int, TenantID?, UUID?, TenantID?, String?, String, String, String?, String?).self) {
            records.append(Record(id: row.0, kind: row.1, windowStart: row.2, firstSeen: row.3, lastSeen: row.4, attempts: row.5,
                                  actorTenant: row.6, actorKey: row.7, targetTenant: row.8, targetSlug: row.9, method: row.10,
                                  route: row.11, clientAddress: row.12, requestID: row.13))
        }
        return records
    }
}
