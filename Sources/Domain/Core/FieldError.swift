/// One problem with one input field, worded so it can be shown to the caller.
public struct FieldError: Sendable, Equatable, Codable {
    /// The field's name as the HTTP contract spells it (snake_case).
    public let field: String
    public let message: String

    public init(field: String, message: String) {
        self.field = field
        self.message = message
    }
}
