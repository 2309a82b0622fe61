import Foundation

/// What a caller can ask of a pet. Ids and times arrive here so that deciding stays deterministic.
public enum PetCommand: Sendable, Equatable {
    case register(id: UUID, name: String, species: String, breed: String?, microchipID: String?, at: Date)
    /// A partial update: `nil` and `.unchanged` leave a field as it is.
    case update(name: String?, species: String?, breed: FieldChange<String>, microchipID: FieldChange<String>, at: Date)
    case remove(at: Date)
    case restore(at: Date)
}
