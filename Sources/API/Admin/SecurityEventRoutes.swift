import Database
import Domain
import Foundation
import Hummingbird
import Logging
import Operations
import Tenancy

/// `GET /api/admin/security-events[?tenant=&kind=]`: the platform security log, newest first;
/// with `tenant`, the attempts made against that tenant or with its keys.
struct SecurityEventRoutes {
    let queries: SecurityEventQueries
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
            var tenant: TenantID?
            if let slug = query["tenant"] {
                // Anything not shaped like a slug names no tenant, and a NUL could not even be asked for.
                guard Tenant.validateSlug(slug).isEmpty, let record = try await catalog.tenant(slug: slug) else {
                    throw Problem.notFound("No tenant has the slug \"\(slug.prefix(63))\".")
                }
                tenant = record.id
            }
            let before = try Pagination.cursor(query).map { cursor -> Int64 in
                guard let id = Int64(cursor) else { throw Problem.badRequest("The cursor is not one this server issued.") }
                return id
            } ?? Int64.max
            let items = try await queries.page(before: before, kind: kind, involving: tenant, limit: limit + 1).map { row in
                Item(id: row.id, kind: row.kind, windowStart: row.windowStart, firstSeen: row.firstSeen, lastSeen: row.lastSeen,
                     attempts: row.attempts, actorTenant: row.actorTenant?.description, actorKey: row.actorKey?.uuidString.lowercased(),
                     targetTenant: row.targetTenant?.description, targetSlug: row.targetSlug, method: row.method, route: row.route,
                     clientAddress: row.clientAddress, requestId: row.requestID)
            }
            let page = Array(items.prefix(limit))
            return try JSONResponse.make(ListPage(items: page, nextCursor: items.count > limit ? page.last.map { Pagination.encode(String($0.id)) } : nil))
        }
    }
}
