/// A tenant's configuration: the values it set explicitly.
public struct TenantConfigState: Sendable, Equatable, Codable {
    public var values: [String: ConfigValue]

    public init(values: [String: ConfigValue] = [:]) {
        self.values = values
    }

    /// The value in force for `key`: the tenant's own, else the platform default.
    public func effectiveValue(_ key: String) -> ConfigValue? {
        values[key] ?? TenantConfig.defaults[key]
    }
}
