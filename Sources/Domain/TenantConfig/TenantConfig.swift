/// The rules of a tenant's configuration: a JSON value per key, typed for the keys the
/// platform reads, and size-limited for the rest.
public enum TenantConfig: Decider {
    public typealias State = TenantConfigState
    public typealias Command = TenantConfigCommand
    public typealias Event = TenantConfigEvent

    public static let initialState = TenantConfigState()

    /// The values in force when a tenant has not set its own.
    public static let defaults: [String: ConfigValue] = ["include_deleted_pets": .bool(false)]

    public static func decide(_ command: TenantConfigCommand, _ state: TenantConfigState) throws(DomainError) -> [TenantConfigEvent] {
        var validation = Validation()
        switch command {
        case .set(let key, let value, let at):
            validation.configKey(key)
            validation.configValue(value, forKey: key)
            try validation.check()
            return state.values[key] == value ? [] : [.set(ConfigValueSet(key: key, value: value, at: at))]
        case .unset(let key, let at):
            validation.configKey(key)
            try validation.check()
            return state.values[key] == nil ? [] : [.unset(ConfigValueUnset(key: key, at: at))]
        }
    }

    public static func evolve(_ state: TenantConfigState, _ event: TenantConfigEvent) -> TenantConfigState {
        var state = state
        switch event {
        case .set(let set):
            state.values[set.key] = set.value
        case .unset(let unset):
            state.values[unset.key] = nil
        }
        return state
    }
}
