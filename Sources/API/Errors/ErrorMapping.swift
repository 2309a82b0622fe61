import Database
import Domain
import EventLog
import Foundation
import Hummingbird
import Operations
import Synchronization
import Tenancy

/// Every module's errors in HTTP terms, in this one place: routes throw what the modules throw
/// and never translate it themselves.
///
/// `problem(for:)` answers nil for an error no module declares (a raw driver error, a bug): the
/// middleware answers that with an opaque 500, logs it with its cause, and records it in the
/// `UnmappedErrors` the app was built with, which the tests check stays empty.
enum ErrorMapping {
    static func problem(for error: any Error) -> Problem? {
        switch error {
        case let problem as Problem: problem
        case let error as HTTPError: http(error)
        case let error as DomainError: domain(error)
        case let error as TenancyError: tenancy(error)
        case let error as EventLogError: eventLog(error)
        case let error as IdempotencyError: idempotency(error)
        case let error as AnalyticsError: analytics(error)
        case let error as AnalyticsRange.Failure: .badRequest(error.description, errors: [.init(field: error.field, message: error.description)])
        case let error as DatabaseError: database(error)
        case let error as TenantResolver.Failure: resolution(error)
        // A request cut off by its deadline: the deadline already answered 503, this is the
        // handler's own task ending.
        case is CancellationError: .serviceUnavailable("The request was cut off; retry it.")
        default: DatabaseFault.classify(error).map(Problem.databaseFault)
        }
    }

    /// Whether the answer is a 5xx whose cause belongs in the log as an error.
    static func isServerFault(_ error: any Error) -> Bool {
        switch error {
        case let error as TenancyError: error.code == .storage
        case let error as EventLogError: ![.wrongExpectedVersion].contains(error.code)
        case is DatabaseError: true
        default: false
        }
    }

    static func http(_ error: HTTPError) -> Problem {
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

    /// A decider's refusal.
    static func domain(_ error: DomainError) -> Problem {
        let errors = error.fieldErrors.map { Problem.FieldError(field: $0.field, message: $0.message) }
        switch error.code {
        case .validation: return .validation(error.message, errors: errors)
        case .notFound, .removed: return .notFound()
        case .alreadyExists, .conflict: return .conflict(error.message)
        case .lastAdminKey: return .lastAdminKey(error.message)
        }
    }

    static func tenancy(_ error: TenancyError) -> Problem {
        let errors = error.fieldErrors.map { Problem.FieldError(field: $0.field, message: $0.message) }
        switch error.code {
        case .notFound: return .notFound()
        case .slugTaken: return .conflict("That slug is taken.")
        case .invalid: return .validation(error.message, errors: errors)
        case .conflict: return .conflict(error.message)
        case .unavailable: return .serviceUnavailable(error.message)
        case .lastAdminKey: return .lastAdminKey(error.message)
        case .storage: return error.databaseFault.map(Problem.databaseFault) ?? .internalError()
        }
    }

    static func eventLog(_ error: EventLogError) -> Problem {
        switch error.code {
        // Only a client's If-Match reaches here: a version read by the server is retried.
        case .wrongExpectedVersion where error.actualVersion == 0:
            return .notFound()
        case .wrongExpectedVersion:
            return Problem(type: Problem.typeBase + "precondition-failed", title: "Precondition Failed", status: .preconditionFailed,
                           detail: "The resource changed since that version: it is at version \(error.actualVersion ?? 0).")
        case .storage:
            return error.databaseFault.map(Problem.databaseFault) ?? .internalError()
        case .emptyAppend, .invalidStream, .invalidEvent, .eventTooLarge, .unknownEventType, .upcastFailed, .decodingFailed:
            // What the domain let through and the log refused, or a stored event this build
            // cannot read: the server's fault either way.
            return .internalError()
        }
    }

    static func idempotency(_ error: IdempotencyError) -> Problem {
        switch error {
        case .inUse: .idempotencyKeyInUse()
        case .reused: .idempotencyKeyReused()
        }
    }

    static func analytics(_ error: AnalyticsError) -> Problem {
        switch error {
        case .unknownTenant: .notFound(error.description)
        case .notInstalled: .serviceUnavailable(error.description)
        }
    }

    /// A request that names its tenant in a way no tenant could be named.
    static func resolution(_ error: TenantResolver.Failure) -> Problem {
        switch error {
        case .malformedSlug: .badRequest("The tenant slug is malformed: it must match ^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$.")
        case .malformedHost: .badRequest("The Host header is malformed.")
        case .conflicting: .badRequest("The request names different tenants (subdomain, path and X-Tenant-ID disagree).")
        }
    }

    static func database(_ error: DatabaseError) -> Problem {
        DatabaseFault.classify(error).map(Problem.databaseFault) ?? .internalError()
    }
}

/// Errors that reached HTTP without a mapping, kept per app so that tests can fail on them.
public final class UnmappedErrors: Sendable {
    private let seen = Mutex<[String]>([])

    public init() {}

    public var all: [String] { seen.withLock { $0 } }

    func record(_ error: any Error) {
        seen.withLock { $0.append(String(reflecting: error)) }
    }
}
