/// The JSON type of a `ConfigValue`, for keys that only accept one.
public enum ConfigValueKind: String, Sendable, Equatable, CaseIterable {
    case null, bool = "boolean", number, string, array, object

    public init(_ value: ConfigValue) {
        switch value {
        case .null: self = .null
        case .bool: self = .bool
        case .number: self = .number
        case .string: self = .string
        case .array: self = .array
        case .object: self = .object
        }
    }
}
