import Foundation

/// What a tenant admin can do to the configuration.
public enum TenantConfigCommand: Sendable, Equatable {
    case set(key: String, value: ConfigValue, at: Date)
    /// Removes the tenant's own value, so the default (if any) applies again.
    case unset(key: String, at: Date)
}
