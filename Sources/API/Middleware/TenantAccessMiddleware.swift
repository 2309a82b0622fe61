import EventLog
import Hummingbird
import Logging
import Tenancy

/// The wall in front of every tenant route: a tenant is named, the key is valid, the tenant
/// exists and the key belongs to it, and the tenant is served. Each failure has one answer:
///
/// - no tenant named: 400; bad or missing key: 401 (whether or not the tenant exists);
/// - unknown tenant, or a tenant the key does not belong to: the same 404 as any missing
///   resource, and an entry in the security log (plus an event in the target tenant's log);
/// - suspended tenant: 403 `tenant-suspended`.
public struct TenantAccessMiddleware: RouterMiddleware {
    public typealias Context = AppRequestContext

    let catalog: Catalog
    let authenticator: Authenticator
    let securityLog: SecurityLog

    public init(catalog: Catalog, authenticator: Authenticator, securityLog: SecurityLog) {
        self.catalog = catalog
        self.authenticator = authenticator
        self.securityLog = securityLog
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let slug = context.tenantSlug else {
            throw Problem.badRequest("This route needs a tenant: use {tenant}.<base domain>, /{tenant}/api/… or X-Tenant-ID.")
        }
        guard let principal = try await authenticator.authenticate(authorization: request.headers[.authorization]) else {
            throw Problem.unauthorized()
        }
        context.record.principal = principal.actor
        let route = context.endpointPath ?? request.uri.path
        guard let tenant = try await catalog.tenant(slug: slug) else {
            securityLog.record(.init(kind: .unknownTenant, actor: principal, targetTenant: nil, targetSlug: slug,
                                     method: request.method.rawValue, route: route, clientAddress: context.clientAddress,
                                     requestID: context.requestID))
            throw Problem.notFound()
        }
        guard principal.tenant == tenant.id else {
            securityLog.record(.init(kind: .crossTenant, actor: principal, targetTenant: tenant.id, targetSlug: slug,
                                     method: request.method.rawValue, route: route, clientAddress: context.clientAddress,
                                     requestID: context.requestID))
            context.logger.notice("cross-tenant attempt", metadata: ["target_tenant": "\(tenant.id)", "key": "\(principal.keyID)"])
            throw Problem.notFound()
        }
        context.record.tenant = (tenant.id, tenant.slug)
        guard tenant.isServing else { throw Problem.tenantSuspended() }

        var context = context
        context.tenant = tenant
        context.principal = principal
        context.logger[metadataKey: "tenant"] = "\(tenant.slug)"
        context.logger[metadataKey: "principal"] = "\(principal.actor)"
        return try await next(request, context)
    }
}
