import Foundation

/// A configuration key got a new value.
public struct ConfigValueSet: Sendable, Equatable, Codable {
    public static let eventType = "ConfigValueSet"
    public static let schemaVersion = 1

    public let key: String
    public let value: ConfigValue
    public let at: Date

    public init(key: String, value: ConfigValue, at: Date) {
        self.key = key
        self.value = value
        self.at = at
    }
}

/// A configuration key went back to its default.
public struct ConfigValueUnset: Sendable, Equatable, Codable {
    public static let eventType = "ConfigValueUnset"
    public static let schemaVersion = 1

    public let key: String
    public let at: Date

    public init(key: String, at: Date) {
        self.key = key
        self.at = at
    }
}

/// Everything that can happen to a tenant's configuration.
public enum TenantConfigEvent: Sendable, Equatable {
    case set(ConfigValueSet)
    case unset(ConfigValueUnset)

    /// The name the event log stores this event under.
    public var eventType: String {
        switch self {
        case .set: ConfigValueSet.eventType
        case .unset: ConfigValueUnset.eventType
        }
    }
}
