import HTTPTypes
import Hummingbird

extension Router where Context == AppRequestContext {
    /// Registers a route that needs no tenant and no key, listed in the route table like the
    /// tenant and platform routes so that the OpenAPI test sees it too.
    @discardableResult
    func route(
        _ method: HTTPRequest.Method, _ path: String, in table: RouteTable,
        _ handler: @escaping @Sendable (Request, AppRequestContext) async throws -> Response
    ) -> Self {
        table.add(.init(method: method, path: path, roles: [], tenantScoped: false))
        on(RouterPath(path.replacingOccurrences(of: "{", with: ":").replacingOccurrences(of: "}", with: "")), method: method, use: handler)
        return self
    }
}
