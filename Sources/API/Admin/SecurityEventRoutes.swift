import Database
import Domain
import Foundation
import Hummingbird
import Logging
import PostgresNIO
import Tenancy

/// `GET /api/admin/security-events[?tenant=&kind=]`: the platform security log, newest first;
/// with `tenant`, the attempts made against that tenant or with its keys.
struct SecurityEventRoutes {
    let client: PostgresClient
    let catalog: Catalog
    let table: RouteTable

    static let kinds = [SecurityLog.Kind.crossTenant.rawValue, SecurityLog.Kind.unknownTenant.rawValue]

    struct Item: Encodable {
        let id: Int64
        let kind: String
        let windowStart: Date
        let firstSeen: Date
        let lastSeen: Date
        let attempts: Int
        let actorTenant: String?
        let actorKey: String?
        let targetTenant: String?
        let targetSlug: String?
        let method: String
        let route: String
        let clientAddress: String?
        let requestId: String?
    }

    func register(on group: RouterGroup<PlatformRequestContext>) {
        group.route(.get, "/security-events", in: table) { request, context in
            let query = try QueryParameters(request, allowed: ["limit", "cursor", "tenant", "kind"])
            let limit = try Pagination.limit(query, default: 50, maximum: 500)
            let kind = try query["kind"].map { raw -> String in
                guard Self.kinds.contains(String(raw)) else {
                    throw Problem.badRequest("kind must be one of \(Self.kinds.joined(separator: ", ")).",
                                             errors: [.init(field: "kind", message: "is not a kind of security event")])
                }
                return String(raw)
            }
            var tenant: UUID?
            if let slug = query["tenant"] {
                // Anything not shaped like a slug names no tenant, and a NUL could not even be asked for.
                guard Tenant.validateSlug(slug).isEmpty, let record = try await catalog.tenant(slug: slug) else {
                    throw Problem.notFound("No tenant has the slug \"\(slug.prefix(63))\".")
                }
                tenant = record.id.rawValue
            }
            let before = try Pagination.cursor(query).map { cursor -> Int64 in
                guard let id = Int64(cursor) else { throw Problem.badRequest("The cursor is not one this server issued.") }
                return id
            } ?? Int64.max
            let rows = try await client.query("""
                SELECT id, kind, window_start, first_seen, last_seen, attempts, actor_tenant, actor_key, target_tenant, target_slug,
                       method, route, client_address, request_id
                  FROM security_events
                 WHERE id < \(before) AND (\(kind == nil) OR kind = \(kind ?? ""))
                   AND (\(tenant == nil) OR target_tenant = \(tenant) OR actor_tenant = \(tenant))
                 ORDER BY id DESC LIMIT \(limit + 1)
                """, logger: context.logger)
            var items: [Item] = []
            for try await row in rows.decode((Int64, String, Date, Date, Date, Int, UUID?, UUID?, UUID?, String?, String, String, String?, String?).self) {
                items.append(Item(id: row.0, kind: row.1, windowStart: row.2, firstSeen: row.3, lastSeen: row.4, attempts: row.5,
                                  actorTenant: row.6?.uuidString.lowercased(), actorKey: row.7?.uuidString.lowercased(),
                                  targetTenant: row.8?.uuidString.lowercased(), targetSlug: row.9, method: row.10, route: row.11,
                                  clientAddress: row.12, requestId: row.13))
            }
            let page = Array(items.prefix(limit))
            return try JSONResponse.make(ListPage(items: page, nextCursor: items.count > limit ? page.last.map { Pagination.encode(String($0.id)) } : nil))
        }
    }
}
