import PostgresNIO

/// Errors that mean "the database could not do it now", as opposed to a bug or bad input: the
/// server is gone or refusing, a statement ran past its timeout, a lock was not granted in time.
/// Callers answer these with 503 and Retry-After; a retry may well succeed.
public enum DatabaseFault: Sendable, Equatable {
    /// No connection could be had, or the one in use was lost before the work was sent.
    case unavailable
    /// A statement or a lock wait ran past its timeout; nothing of it was kept.
    case timedOut
    /// The connection was lost while a COMMIT was on its way: the work may or may not be kept.
    case outcomeUnknown
    /// The tenant's data is behind this build and waits for `petstore migrate`; nothing was done.
    case tenantBehind
    /// The unit of work entered a home the tenant has left (a move switched): run again, it
    /// finds the new one (`TenantDatabase.withTenant` does); nothing was done.
    case homeMoved

    /// The fault behind `error`, or nil for any other error.
    public static func classify(_ error: any Error) -> DatabaseFault? {
        if let carrier = error as? any CarriesDatabaseFault { return carrier.databaseFault }
        if let error = error as? DatabaseError {
            return switch error.code {
            case .tenantBehind: .tenantBehind
            case .unreachable, .busy: .unavailable
            case .tenantMoving: .homeMoved
            default: nil
            }
        }
        if let error = error as? PostgresTransactionError {
            if let commit = error.commitError {
                return classify(commit) == nil ? nil : .outcomeUnknown
            }
            if let closure = error.closureError { return classify(closure) }
            if let begin = error.beginError { return classify(begin) }
            return nil
        }
        // The pool's own refusal (its connection attempts keep failing, so it stops trying for a
        // while): no connection could be had. Its type is not public, hence the name.
        if String(describing: type(of: error)) == "ConnectionPoolError" { return .unavailable }
        guard let error = error as? PSQLError else { return nil }
        if let state = error.serverInfo?[.sqlState] {
            switch state {
            case "PT410": return .homeMoved
            case "57014", "55P03": return .timedOut             // query_canceled (statement_timeout), lock_not_available
            case "57P01", "57P02", "57P03", "53300": return .unavailable  // shutting down, starting up, too many connections
            default: return state.hasPrefix("08") ? .unavailable : nil     // connection exceptions
            }
        }
        switch error.code {
        case .connectionError, .serverClosedConnection, .uncleanShutdown, .clientClosedConnection, .poolClosed:
            return .unavailable
        default:
            return nil
        }
    }
}

/// A module error that may stand for a database fault, so that callers above the module can
/// answer 503 without knowing the driver's errors.
public protocol CarriesDatabaseFault: Error {
    var databaseFault: DatabaseFault? { get }
}
