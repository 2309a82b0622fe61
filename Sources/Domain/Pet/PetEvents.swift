import Foundation

// Property names are camelCase and the event log writes them snake_case. Names ending in "ID"
// get explicit coding keys: snake_case decoding turns "pet_id" into "petId", never "petID".

/// A pet entered the store.
public struct PetRegistered: Sendable, Equatable, Codable {
    public static let eventType = "PetRegistered"
    public static let schemaVersion = 1

    public let petID: UUID
    public let name: String
    public let species: String
    public let breed: String?
    public let microchipID: String?
    public let at: Date

    public init(petID: UUID, name: String, species: String, breed: String?, microchipID: String?, at: Date) {
        self.petID = petID
        self.name = name
        self.species = species
        self.breed = breed
        self.microchipID = microchipID
        self.at = at
    }

    enum CodingKeys: String, CodingKey {
        case petID = "petId", name, species, breed, microchipID = "microchipId", at
    }
}

/// A pet's name changed.
public struct PetRenamed: Sendable, Equatable, Codable {
    public static let eventType = "PetRenamed"
    public static let schemaVersion = 1

    public let name: String
    public let at: Date

    public init(name: String, at: Date) {
        self.name = name
        self.at = at
    }
}

/// A pet's species, breed or microchip changed; carries all three new values so a reader
/// never needs the previous event to know the current ones.
public struct PetDetailsChanged: Sendable, Equatable, Codable {
    public static let eventType = "PetDetailsChanged"
    public static let schemaVersion = 1

    public let species: String
    public let breed: String?
    public let microchipID: String?
    public let at: Date

    public init(species: String, breed: String?, microchipID: String?, at: Date) {
        self.species = species
        self.breed = breed
        self.microchipID = microchipID
        self.at = at
    }

    enum CodingKeys: String, CodingKey {
        case species, breed, microchipID = "microchipId", at
    }
}

/// A pet was soft-deleted.
public struct PetRemoved: Sendable, Equatable, Codable {
    public static let eventType = "PetRemoved"
    public static let schemaVersion = 1

    public let at: Date

    public init(at: Date) {
        self.at = at
    }
}

/// A removed pet came back.
public struct PetRestored: Sendable, Equatable, Codable {
    public static let eventType = "PetRestored"
    public static let schemaVersion = 1

    public let at: Date

    public init(at: Date) {
        self.at = at
    }
}

/// Everything that can happen to a pet.
public enum PetEvent: Sendable, Equatable {
    case registered(PetRegistered)
    case renamed(PetRenamed)
    case detailsChanged(PetDetailsChanged)
    case removed(PetRemoved)
    case restored(PetRestored)

    /// The name the event log stores this event under.
    public var eventType: String {
        switch self {
        case .registered: PetRegistered.eventType
        case .renamed: PetRenamed.eventType
        case .detailsChanged: PetDetailsChanged.eventType
        case .removed: PetRemoved.eventType
        case .restored: PetRestored.eventType
        }
    }

    /// When it happened.
    public var at: Date {
        switch self {
        case .registered(let event): event.at
        case .renamed(let event): event.at
        case .detailsChanged(let event): event.at
        case .removed(let event): event.at
        case .restored(let event): event.at
        }
    }
}
