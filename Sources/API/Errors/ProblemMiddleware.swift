import Database
import Hummingbird
import Logging

/// Turns every error into problem+json through `ErrorMapping`; an error it does not know is an
/// opaque 500, logged once here with its cause and recorded in `unmapped`.
public struct ProblemMiddleware<Context: RequestContext>: RouterMiddleware {
    let unmapped: UnmappedErrors

    public init(unmapped: UnmappedErrors = UnmappedErrors()) {
        self.unmapped = unmapped
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch {
            return try response(for: error, request: request, context: context)
        }
    }

    /// The problem+json response for an error; for middleware that adds headers to every
    /// response, errors included.
    func response(for error: any Error, request: Request, context: Context) throws -> Response {
        guard let problem = ErrorMapping.problem(for: error) else {
            unmapped.record(error)
            context.logger.error("request failed", metadata: ["error": "\(String(reflecting: error))"])
            return try Problem.internalError().response(from: request, context: context)
        }
        if DatabaseFault.classify(error) != nil {
            context.logger.warning("database fault", metadata: ["error": "\(DatabaseURL.describe(error))"])
        } else if problem.status == .internalServerError || ErrorMapping.isServerFault(error) {
            context.logger.error("request failed", metadata: ["error": "\(String(reflecting: error))"])
        }
        return try problem.response(from: request, context: context)
    }
}

extension Problem {
    static func databaseFault(_ fault: DatabaseFault) -> Problem {
        if fault == .tenantBehind {
            return Problem(type: typeBase + "tenant-migrating", title: "Service Unavailable", status: .serviceUnavailable,
                           detail: "This tenant's data is being brought up to the server's version; nothing was done. Retry shortly.",
                           headers: [.retryAfter: "5"])
        }
        let detail = switch fault {
        case .unavailable: "The database cannot be reached right now; nothing was done. Retry shortly."
        case .timedOut: "The database did not finish in time (a statement or a lock wait timed out); nothing was done. Retry shortly."
        case .outcomeUnknown:
            "The connection to the database was lost while the change was committing: it may or may not have taken effect. Retry it with the same Idempotency-Key."
        case .homeMoved: "This tenant was being moved and its new home was not reached in time; nothing was done. Retry shortly."
        case .tenantBehind: ""
        }
        return Problem(type: typeBase + "service-unavailable", title: "Service Unavailable", status: .serviceUnavailable,
                       detail: detail, headers: [.retryAfter: "1"])
    }
}
