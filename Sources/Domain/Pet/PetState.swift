import Foundation

/// A registered pet as its events describe it.
public struct PetState: Sendable, Equatable, Codable {
    public var id: UUID
    public var name: String
    public var species: String
    public var breed: String?
    public var microchipID: String?
    /// When the current microchip number was recorded on the pet (at registration or by the
    /// change that set it); nil while it has none.
    public var microchipRegisteredAt: Date?
    /// Soft-deleted: kept, hidden from lists, refusing updates until restored.
    public var removed: Bool
    public var createdAt: Date
    public var updatedAt: Date
    /// How many events built this state, which is also the stream's version.
    public var version: Int

    public init(
        id: UUID, name: String, species: String, breed: String?, microchipID: String?,
        removed: Bool, createdAt: Date, updatedAt: Date, version: Int, microchipRegisteredAt: Date? = nil
    ) {
        self.id = id
        self.name = name
        self.species = species
        self.breed = breed
        self.microchipID = microchipID
        self.microchipRegisteredAt = microchipRegisteredAt
        self.removed = removed
        self.createdAt = createdAt
        self.updatedAt = updatedAt
        self.version = version
    }
}
