import Database

/// The one error type of the tenancy module: a code to branch on and a message safe to show.
public struct TenancyError: Error, Sendable, Equatable, CustomStringConvertible, CustomDebugStringConvertible, CarriesDatabaseFault {
    public enum Code: String, Sendable, CaseIterable {
        case notFound = "not_found"
        case slugTaken = "slug_taken"
        case invalid
        case conflict
        /// The change would leave the tenant without an active admin key.
        case lastAdminKey = "last_admin_key"
        /// Something the change needs cannot be reached now (a tenant's server); retry later.
        case unavailable
        case storage
    }

    public let code: Code
    public let message: String
    public let fieldErrors: [FieldError]
    /// For `storage`: set when the database was unreachable or timed out, rather than broken.
    public var databaseFault: DatabaseFault?
    /// What went wrong underneath, for logs only (it may name tables or server messages).
    public var cause: String?

    public struct FieldError: Sendable, Equatable {
        public let field: String
        public let message: String

        public init(field: String, message: String) {
            self.field = field
            self.message = message
        }
    }

    public init(_ code: Code, _ message: String, fieldErrors: [FieldError] = []) {
        self.code = code
        self.message = message
        self.fieldErrors = fieldErrors
    }

    /// Safe to show to a caller.
    public var description: String { message }

    /// For logs: the code, the message and the cause.
    public var debugDescription: String { "TenancyError.\(code.rawValue): \(message)" + (cause.map { " (\($0))" } ?? "") }

    /// A storage failure caused by `cause`, keeping whether the database was merely unavailable.
    public static func storage(_ message: String, cause: any Error) -> TenancyError {
        var error = TenancyError(.storage, message)
        error.databaseFault = DatabaseFault.classify(cause)
        error.cause = (cause as? any CustomDebugStringConvertible)?.debugDescription ?? DatabaseURL.describe(cause)
        return error
    }
}
