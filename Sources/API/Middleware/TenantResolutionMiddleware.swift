import Database
import Foundation
import HTTPTypes
import Hummingbird
import Tenancy

/// Reads which tenant a request names and strips a `/{slug}` path prefix so that the router sees
/// one set of routes (`/api/...`) whichever strategy was used. Checks nothing about the tenant.
///
/// It wraps the router rather than sitting in it, because the router picks the route from the
/// path before its middleware runs.
public struct TenantResolvingResponder<Inner: HTTPResponder>: HTTPResponder where Inner.Context == AppRequestContext {
    public typealias Context = AppRequestContext

    let resolver: TenantResolver
    let inner: Inner

    public init(resolver: TenantResolver, inner: Inner) {
        self.resolver = resolver
        self.inner = inner
    }

    public func respond(to request: Request, context: Context) async throws -> Response {
        let resolution: TenantResolver.Resolution
        do {
            resolution = try resolver.resolve(host: request.head.authority, path: request.uri.path, header: request.headers[.tenantID])
        } catch {
            var response = try ErrorMapping.resolution(error).response(from: request, context: context)
            let offered = request.headers[.requestID].flatMap { RequestIDMiddleware.isAcceptable($0) ? $0 : nil }
            response.headers[.requestID] = offered ?? UUID.random().uuidString.lowercased()
            return response
        }
        var context = context
        context.tenantSlug = resolution.slug
        guard resolution.path != request.uri.path else { return try await inner.respond(to: request, context: context) }
        var head = request.head
        head.path = resolution.path + (request.uri.query.map { "?" + $0 } ?? "")
        return try await inner.respond(to: Request(head: head, body: request.body), context: context)
    }
}
