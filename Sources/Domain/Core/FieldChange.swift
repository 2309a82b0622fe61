/// What an update does to an optional field: leave it, set it, or clear it.
///
/// A plain `Optional` cannot tell "not mentioned" from "set to nothing", which a PATCH needs.
public enum FieldChange<Value: Sendable & Equatable>: Sendable, Equatable {
    case unchanged
    case set(Value)
    case clear
}
