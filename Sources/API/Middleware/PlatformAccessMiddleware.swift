import Hummingbird
import Tenancy

/// In front of `/api/admin/...`: a platform admin key, or 401/403.
public struct PlatformAccessMiddleware: RouterMiddleware {
    public typealias Context = AppRequestContext

    let authenticator: Authenticator

    public init(authenticator: Authenticator) {
        self.authenticator = authenticator
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let principal = try await authenticator.authenticate(authorization: request.headers[.authorization]) else {
            throw Problem.unauthorized()
        }
        context.record.principal = principal.actor
        guard principal.isPlatformAdmin else { throw Problem.forbidden(role: principal.role) }
        var context = context
        context.principal = principal
        context.logger[metadataKey: "principal"] = "\(principal.actor)"
        return try await next(request, context)
    }
}
