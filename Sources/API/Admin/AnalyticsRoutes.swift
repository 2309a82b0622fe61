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
            let range: AnalyticsRange
            do {
                range = try AnalyticsRange(from: query["from"], to: query["to"])
            } catch let error as AnalyticsRange.Failure {
                throw Problem.badRequest(error.description, errors: [.init(field: error.field, message: error.description)])
            }
            let tenant = query["tenant"]
            // Anything not shaped like a slug names no tenant, and a NUL could not even be asked for.
            if let tenant, !Tenant.validateSlug(tenant).isEmpty { throw Problem.notFound(AnalyticsError.unknownTenant(tenant).description) }
            do {
                let report = try await dependencies.analyticsReport(range: range, tenant: tenant)
                return try JSONResponse.make(report)
            } catch let error as AnalyticsError {
                switch error {
                case .unknownTenant: throw Problem.notFound(error.description)
                case .notInstalled: throw Problem.serviceUnavailable(error.description)
                }
            }
        }
    }
}
