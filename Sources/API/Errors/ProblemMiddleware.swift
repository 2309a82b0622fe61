import Database
import Hummingbird
import Logging
import Operations

/// Turns every error into problem+json: a `Problem` renders itself, Hummingbird's own errors
/// (no route, wrong method, body too large) are mapped, and anything else is an opaque 500 that is
/// logged once here with its cause.
public struct ProblemMiddleware<Context: RequestContext>: RouterMiddleware {
    public init() {}

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch {
            return try Self.response(for: error, request: request, context: context)
        }
    }

    /// The problem+json response for an error; for middleware that adds headers to every
    /// response, errors included.
    static func response(for error: any Error, request: Request, context: Context) throws -> Response {
        switch error {
        case let problem as Problem:
            return try problem.response(from: request, context: context)
        case let error as HTTPError:
            return try problem(for: error).response(from: request, context: context)
        case let error as IdempotencyError:
            return try (error == .inUse ? Problem.idempotencyKeyInUse() : Problem.idempotencyKeyReused()).response(from: request, context: context)
        case let error where DatabaseFault.classify(error) != nil:
            context.logger.warning("database fault", metadata: ["error": "\(DatabaseURL.describe(error))"])
            return try Problem.databaseFault(DatabaseFault.classify(error)!).response(from: request, context: context)
        default:
            context.logger.error("request failed", metadata: ["error": "\(String(reflecting: error))"])
            return try Problem.internalError().response(from: request, context: context)
        }
    }

    static func problem(for error: HTTPError) -> Problem {
        switch error.status {
        case .notFound: return .notFound()
        case .methodNotAllowed: return .methodNotAllowed()
        case .contentTooLarge:
            return Problem(type: Problem.typeBase + "payload-too-large", title: "Content Too Large", status: .contentTooLarge,
                           detail: "The request body is larger than the server accepts.")
        default:
            return Problem(type: Problem.typeBase + "http-\(error.status.code)", title: error.status.reasonPhrase,
                           status: error.status, detail: error.body)
        }
    }
}

extension Problem {
    static func databaseFault(_ fault: DatabaseFault) -> Problem {
        let detail = switch fault {
        case .unavailable: "The database cannot be reached right now; nothing was done. Retry shortly."
        case .timedOut: "The database did not finish in time (a statement or a lock wait timed out); nothing was done. Retry shortly."
        case .outcomeUnknown:
            "The connection to the database was lost while the change was committing: it may or may not have taken effect. Retry it with the same Idempotency-Key."
        }
        return Problem(type: typeBase + "service-unavailable", title: "Service Unavailable", status: .serviceUnavailable,
                       detail: detail, headers: [.retryAfter: "1"])
    }
}
