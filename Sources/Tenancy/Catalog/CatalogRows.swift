import Database
import Foundation
import PostgresNIO

/// One tenant's catalog rows (its record, users and keys) as read in one database, to be
/// written as they are in another: the mirror of a tenant placed in a database of its own.
struct CatalogRows: Sendable {
    struct Record: Sendable {
        let slug: String, name: String, plan: String, status: String, placement: String, location: String?
        let createdAt: Date, updatedAt: Date, removalScheduledAt: Date?
    }

    struct User: Sendable {
        let id: UUID, email: String?, role: String, createdAt: Date
    }

    struct Key: Sendable {
        let id: UUID, prefix: String, hash: ByteBuffer, userID: UUID?, role: String, createdAt: Date, revokedAt: Date?
    }

    let record: Record
    let users: [User]
    let keys: [Key]

    /// Nil when the tenant has no record there yet.
    static func read(in session: TenantSession) async throws -> CatalogRows? {
        let tenant = session.tenant
        let records = try await session.query("""
            SELECT slug, name, plan, status, placement, location, created_at, updated_at, removal_scheduled_at FROM tenants WHERE id = \(tenant)
            """).decode((String, String, String, String, String, String?, Date, Date, Date?).self).all()
        guard let r = records.first else { return nil }
        let users = try await session.query("SELECT id, email, role, created_at FROM users WHERE tenant_id = \(tenant)")
            .decode((UUID, String?, String, Date).self).all().map { User(id: $0.0, email: $0.1, role: $0.2, createdAt: $0.3) }
        let keys = try await session.query("""
            SELECT id, prefix, key_hash, user_id, role, created_at, revoked_at FROM api_keys WHERE tenant_id = \(tenant)
            """).decode((UUID, String, ByteBuffer, UUID?, String, Date, Date?).self).all()
            .map { Key(id: $0.0, prefix: $0.1, hash: $0.2, userID: $0.3, role: $0.4, createdAt: $0.5, revokedAt: $0.6) }
        return CatalogRows(record: Record(slug: r.0, name: r.1, plan: r.2, status: r.3, placement: r.4, location: r.5,
                                          createdAt: r.6, updatedAt: r.7, removalScheduledAt: r.8),
                           users: users, keys: keys)
    }

    /// Writes the rows over the session's tenant's: its record must exist there (the mirror's row
    /// is made first, when the tenant is placed). The record wins, a revocation included: one
    /// written to the mirror ahead of a change that then did not commit is undone.
    func write(in session: TenantSession) async throws {
        let tenant = session.tenant, r = record
        try await session.run("""
            UPDATE tenants SET name = \(r.name), plan = \(r.plan), status = \(r.status), created_at = \(r.createdAt),
                   updated_at = \(r.updatedAt), removal_scheduled_at = \(r.removalScheduledAt)
             WHERE id = \(tenant)
            """)
        for user in users {
            try await session.run("""
                INSERT INTO users (tenant_id, id, email, role, created_at) VALUES (\(tenant), \(user.id), \(user.email), \(user.role), \(user.createdAt))
                ON CONFLICT (tenant_id, id) DO UPDATE SET email = EXCLUDED.email, role = EXCLUDED.role
                """)
        }
        for key in keys {
            try await session.run("""
                INSERT INTO api_keys (tenant_id, id, prefix, key_hash, user_id, role, created_at, revoked_at)
                VALUES (\(tenant), \(key.id), \(key.prefix), \(key.hash), \(key.userID), \(key.role), \(key.createdAt), \(key.revokedAt))
                ON CONFLICT (tenant_id, id) DO UPDATE SET revoked_at = EXCLUDED.revoked_at
                """)
        }
    }
}
