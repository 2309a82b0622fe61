import Domain
import Foundation
import Hummingbird
import Operations

/// `GET /api/admin/analytics?from=&to=&tenant=`: the platform's analytics as JSON.
struct AnalyticsRoutes {
    let dependencies: AppDependencies
    let table: RouteTable

    func register(on group: RouterGroup<PlatformRequestContext>) {
        group.route(.get, "/analytics", in: table) { request, context in
            let query = try QueryParameters(request, allowed: ["from", "to", "tenant"])
            let range = try AnalyticsRange(from: query["from"], to: query["to"])
            let tenant = query["tenant"]
            // Anything not shaped like a slug names no tenant, and a NUL could not even be asked for.
            if let tenant, !Tenant.validateSlug(tenant).isEmpty { throw AnalyticsError.unknownTenant(tenant) }
            return try JSONResponse.make(try await dependencies.analyticsReport(range: range, tenant: tenant))
        }
    }
}
