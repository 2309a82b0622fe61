import HTTPTypes
import Hummingbird

/// Answers 405 with `Allow` when the path is a route's but the method is not one of its methods.
///
/// The router sends such requests to its not-found fallback, whose chain is the only one where
/// no endpoint is set when router middleware runs; the allowed methods come from the route table,
/// the same record the OpenAPI document is built from.
struct MethodNotAllowedMiddleware: RouterMiddleware {
    typealias Context = AppRequestContext

    let table: RouteTable

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard context.endpointPath == nil else { return try await next(request, context) }
        let allowed = table.methods(forPath: request.uri.path)
        guard !allowed.isEmpty, !allowed.contains(request.method) else { return try await next(request, context) }
        var problem = Problem.methodNotAllowed()
        problem.detail = "This resource supports \(allowed.map(\.rawValue).joined(separator: ", ")); not \(request.method.rawValue)."
        problem.headers[.allow] = allowed.map(\.rawValue).joined(separator: ", ")
        throw problem
    }
}
