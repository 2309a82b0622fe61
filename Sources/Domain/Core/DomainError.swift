/// The one error type of `Domain`: a code to branch on and a message safe to show.
///
/// It deliberately knows nothing of HTTP; the `API` module maps each code to a status.
public struct DomainError: Error, Sendable, Equatable, CustomStringConvertible, CustomDebugStringConvertible {
    public enum Code: String, Sendable, CaseIterable {
        /// The input breaks a rule; `fieldErrors` names every bad field.
        case validation
        case notFound = "not_found"
        case alreadyExists = "already_exists"
        /// The target exists but was removed (or is being offboarded), so it no longer accepts this command.
        case removed
        case conflict
        /// The command would leave the tenant without an active admin key.
        case lastAdminKey = "last_admin_key"
    }

    /// Lets callers spell the field type either way.
    public typealias FieldError = Domain.FieldError

    public let code: Code
    public let message: String
    /// Every bad field, for `.validation`; empty otherwise.
    public let fieldErrors: [FieldError]

    public init(_ code: Code, _ message: String, fieldErrors: [FieldError] = []) {
        self.code = code
        self.message = message
        self.fieldErrors = fieldErrors
    }

    /// Safe to show to a caller: it names fields and rules, never stored data of others.
    public var description: String { message }

    /// For logs: the code and the message.
    public var debugDescription: String { "DomainError.\(code.rawValue): \(message)" }

    /// Input that breaks one or more rules.
    public static func validation(_ fieldErrors: [FieldError]) -> DomainError {
        let fields = fieldErrors.map(\.field).joined(separator: ", ")
        return DomainError(.validation, "The request has invalid fields: \(fields).", fieldErrors: fieldErrors)
    }

    /// The target of a command does not exist.
    public static func notFound(_ message: String) -> DomainError {
        DomainError(.notFound, message)
    }

    /// A create-style command names something that already exists.
    public static func alreadyExists(_ message: String) -> DomainError {
        DomainError(.alreadyExists, message)
    }

    /// The target was removed and refuses the command until it is restored.
    public static func removed(_ message: String) -> DomainError {
        DomainError(.removed, message)
    }

    /// The command would revoke the tenant's last active admin key.
    public static func lastAdminKey(_ message: String) -> DomainError {
        DomainError(.lastAdminKey, message)
    }

    /// The command contradicts the target's current state.
    public static func conflict(_ message: String) -> DomainError {
        DomainError(.conflict, message)
    }
}
