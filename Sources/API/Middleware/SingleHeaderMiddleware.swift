import HTTPTypes
import Hummingbird

/// Refuses a request that repeats a header it must send at most once: with two `Host`, two
/// `X-Tenant-ID` or two `Authorization` lines, different parts of the stack could read different
/// ones (RFC 9112 §3.2 makes two `Host` lines a 400); two `Content-Type` lines leave the body's
/// type unknown.
///
/// The first `Host` line becomes the request's authority when HTTP/1 is converted to
/// HTTP types; any further one stays among the fields, which is how a second one shows.
struct SingleHeaderMiddleware: RouterMiddleware {
    typealias Context = AppRequestContext

    static let host = HTTPField.Name("Host")!
    static let singletons: [(name: HTTPField.Name, most: Int)] = [
        (host, 0), (.tenantID, 1), (.authorization, 1), (.contentType, 1),
    ]

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        for (name, most) in Self.singletons where request.headers[values: name].count > most {
            throw Problem.badRequest("The request has more than one \(name.rawName) header; send it once.",
                                     errors: [.init(field: name.rawName, message: "must be sent once")])
        }
        return try await next(request, context)
    }
}
