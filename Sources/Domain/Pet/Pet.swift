import Foundation

/// The rules of one pet's life: registration, partial updates, soft removal and restoration.
///
/// Commands that would change nothing decide no events rather than fail, so that retries and
/// repeated PATCHes are harmless.
public enum Pet: Decider {
    /// `nil` until the pet is registered.
    public typealias State = PetState?
    public typealias Command = PetCommand
    public typealias Event = PetEvent

    public static let initialState: PetState? = nil

    public static func decide(_ command: PetCommand, _ state: PetState?) throws(DomainError) -> [PetEvent] {
        switch command {
        case .register(let id, let name, let species, let breed, let microchipID, let at):
            guard state == nil else { throw .alreadyExists("A pet with this id already exists.") }
            var validation = Validation()
            let event = PetRegistered(
                petID: id,
                name: validation.petName(name),
                species: validation.species(species),
                breed: validation.breed(breed),
                microchipID: validation.microchipID(microchipID),
                at: at
            )
            try validation.check()
            return [.registered(event)]
        case .update(let name, let species, let breed, let microchipID, let at):
            return try update(existing(state), name: name, species: species, breed: breed, microchipID: microchipID, at: at)
        case .remove(let at):
            return try existing(state).removed ? [] : [.removed(PetRemoved(at: at))]
        case .restore(let at):
            return try existing(state).removed ? [.restored(PetRestored(at: at))] : []
        }
    }

    private static func existing(_ state: PetState?) throws(DomainError) -> PetState {
        guard let state else { throw .notFound("The pet does not exist.") }
        return state
    }

    private static func update(
        _ pet: PetState, name: String?, species: String?, breed: FieldChange<String>,
        microchipID: FieldChange<String>, at: Date
    ) throws(DomainError) -> [PetEvent] {
        guard !pet.removed else { throw .removed("The pet has been removed; restore it before changing it.") }
        var validation = Validation()
        let newName = name.map { validation.petName($0) } ?? pet.name
        let newSpecies = species.map { validation.species($0) } ?? pet.species
        let newBreed = switch breed {
        case .unchanged: pet.breed
        case .set(let value): validation.breed(value)
        case .clear: String?.none
        }
        let newMicrochipID = switch microchipID {
        case .unchanged: pet.microchipID
        case .set(let value): validation.microchipID(value)
        case .clear: String?.none
        }
        try validation.check()

        var events: [PetEvent] = []
        if newName != pet.name {
            events.append(.renamed(PetRenamed(name: newName, at: at)))
        }
        if newSpecies != pet.species || newBreed != pet.breed || newMicrochipID != pet.microchipID {
            events.append(.detailsChanged(PetDetailsChanged(species: newSpecies, breed: newBreed, microchipID: newMicrochipID, at: at)))
        }
        return events
    }

    public static func evolve(_ state: PetState?, _ event: PetEvent) -> PetState? {
        if case .registered(let registered) = event {
            // Only ever the first event; should a log hold another, its data wins but the
            // version keeps counting so it still equals the stream's length.
            return PetState(
                id: registered.petID, name: registered.name, species: registered.species, breed: registered.breed,
                microchipID: registered.microchipID, removed: false, createdAt: registered.at, updatedAt: registered.at,
                version: (state?.version ?? 0) + 1, microchipRegisteredAt: registered.microchipID == nil ? nil : registered.at
            )
        }
        // Nothing to change before registration; decide never produces such a history.
        guard var pet = state else { return nil }
        switch event {
        case .registered:
            break
        case .renamed(let renamed):
            pet.name = renamed.name
        case .detailsChanged(let changed):
            pet.species = changed.species
            pet.breed = changed.breed
            if changed.microchipID != pet.microchipID {
                pet.microchipRegisteredAt = changed.microchipID == nil ? nil : changed.at
            }
            pet.microchipID = changed.microchipID
        case .removed:
            pet.removed = true
        case .restored:
            pet.removed = false
        }
        pet.updatedAt = event.at
        pet.version += 1
        return pet
    }
}
