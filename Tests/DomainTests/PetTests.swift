import Domain
import Foundation
import Testing

@Suite struct PetTests {
    typealias F = Fixture

    // MARK: Registering

    @Test func `registering a new pet records it with trimmed values`() {
        given(Pet.self)
            .when(.register(id: F.petID, name: "  Rex ", species: "\tdog\n", breed: " beagle ", microchipID: " 123456789 ", at: F.start))
            .then([F.registered()])
    }

    @Test func `an empty or blank breed and microchip mean none`() {
        given(Pet.self)
            .when(F.register(breed: "  ", microchipID: ""))
            .then([F.registered(breed: nil, microchipID: nil)])
    }

    @Test func `registering an id that is already taken is refused`() {
        given(Pet.self, [F.registered()]).when(F.register(name: "Max")).thenThrows(.alreadyExists)
    }

    @Test func `registering a removed pet's id again is still refused`() {
        given(Pet.self, [F.registered(), .removed(PetRemoved(at: F.minute(1)))]).when(F.register()).thenThrows(.alreadyExists)
    }

    @Test func `every bad field is reported at once`() {
        given(Pet.self)
            .when(F.register(name: " ", species: String(repeating: "x", count: 51), breed: String(repeating: "b", count: 101), microchipID: "12AB"))
            .thenRejects(["name", "species", "breed", "microchip_id"])
    }

    @Test func `a validation error names the bad fields in its message`() {
        let error = given(Pet.self).when(F.register(name: "", microchipID: "1")).thenThrows(.validation)
        #expect(error?.message == "The request has invalid fields: name, microchip_id.")
        #expect(error?.fieldErrors.first == FieldError(field: "name", message: "is required"))
    }

    // MARK: Commands before registration

    @Test(arguments: [
        Fixture.update(name: "Max"), .remove(at: Fixture.start), .restore(at: Fixture.start),
    ])
    func `commands on a pet that was never registered are answered with not found`(command: PetCommand) {
        given(Pet.self).when(command).thenThrows(.notFound)
    }

    // MARK: Updating

    @Test func `renaming records the new name`() {
        given(Pet.self, [F.registered()])
            .when(F.update(name: " Max "))
            .then([.renamed(PetRenamed(name: "Max", at: F.minute(1)))])
    }

    @Test func `renaming to the same name is a no-op`() {
        given(Pet.self, [F.registered()]).when(F.update(name: "Rex")).then([])
        given(Pet.self, [F.registered()]).when(F.update(name: "  Rex  ")).then([])
    }

    @Test func `an update that mentions no field is a no-op`() {
        given(Pet.self, [F.registered()]).when(F.update()).then([])
    }

    @Test func `an update that repeats the current values is a no-op`() {
        given(Pet.self, [F.registered()])
            .when(F.update(name: "Rex", species: "dog", breed: .set("beagle"), microchipID: .set("123456789")))
            .then([])
    }

    @Test func `changing the species records all three details`() {
        given(Pet.self, [F.registered()])
            .when(F.update(species: "cat"))
            .then([.detailsChanged(PetDetailsChanged(species: "cat", breed: "beagle", microchipID: "123456789", at: F.minute(1)))])
    }

    @Test func `clearing the breed and the microchip records them as none`() {
        let state = given(Pet.self, [F.registered()])
            .when(F.update(breed: .clear, microchipID: .clear))
            .then([.detailsChanged(PetDetailsChanged(species: "dog", breed: nil, microchipID: nil, at: F.minute(1)))])
        #expect(state?.breed == nil)
        #expect(state?.microchipID == nil)
    }

    @Test func `setting the breed to an empty string clears it`() {
        given(Pet.self, [F.registered()])
            .when(F.update(breed: .set("")))
            .then([.detailsChanged(PetDetailsChanged(species: "dog", breed: nil, microchipID: "123456789", at: F.minute(1)))])
    }

    @Test func `clearing a breed that is already empty is a no-op`() {
        given(Pet.self, [F.registered(breed: nil)]).when(F.update(breed: .clear)).then([])
    }

    @Test func `renaming and changing details together records both, the rename first`() {
        given(Pet.self, [F.registered()])
            .when(F.update(name: "Tom", species: "cat", microchipID: .set("987654321012345")))
            .then([
                .renamed(PetRenamed(name: "Tom", at: F.minute(1))),
                .detailsChanged(PetDetailsChanged(species: "cat", breed: "beagle", microchipID: "987654321012345", at: F.minute(1))),
            ])
    }

    @Test func `an update validates only the fields it provides`() {
        given(Pet.self, [F.registered()]).when(F.update(microchipID: .set("12"))).thenRejects(["microchip_id"])
        given(Pet.self, [F.registered()]).when(F.update(name: "", species: "")).thenRejects(["name", "species"])
    }

    @Test func `updating a removed pet is refused`() {
        let history: [PetEvent] = [F.registered(), .removed(PetRemoved(at: F.minute(1)))]
        given(Pet.self, history).when(F.update(name: "Max")).thenThrows(.removed)
        given(Pet.self, history).when(F.update(species: "cat")).thenThrows(.removed)
    }

    // MARK: When the microchip was registered

    @Test func `a pet registered with a microchip has it from its registration, one without has none`() {
        #expect(Pet.fold([F.registered()])?.microchipRegisteredAt == F.start)
        #expect(Pet.fold([F.registered(microchipID: nil)])?.microchipRegisteredAt == nil)
    }

    @Test func `a new microchip number is registered when it is set, and clearing it leaves none`() {
        let rechipped = given(Pet.self, [F.registered()])
            .when(F.update(microchipID: .set("987654321012345"), at: F.minute(2)))
            .then([.detailsChanged(PetDetailsChanged(species: "dog", breed: "beagle", microchipID: "987654321012345", at: F.minute(2)))])
        #expect(rechipped?.microchipRegisteredAt == F.minute(2))
        let cleared = given(Pet.self, [F.registered()]).when(F.update(microchipID: .clear, at: F.minute(3)))
            .then([.detailsChanged(PetDetailsChanged(species: "dog", breed: "beagle", microchipID: nil, at: F.minute(3)))])
        #expect(cleared?.microchipID == nil)
        #expect(cleared?.microchipRegisteredAt == nil)
    }

    @Test func `changing other details or the name keeps the microchip's registration time`() {
        let changed = given(Pet.self, [F.registered()])
            .when(F.update(name: "Max", species: "cat", breed: .clear, at: F.minute(4)))
            .then([
                .renamed(PetRenamed(name: "Max", at: F.minute(4))),
                .detailsChanged(PetDetailsChanged(species: "cat", breed: nil, microchipID: "123456789", at: F.minute(4))),
            ])
        #expect(changed?.microchipRegisteredAt == F.start)
        #expect(changed?.updatedAt == F.minute(4))
    }

    // MARK: Removing and restoring

    @Test func `removing an active pet records it`() {
        let state = given(Pet.self, [F.registered()])
            .when(.remove(at: F.minute(5)))
            .then([.removed(PetRemoved(at: F.minute(5)))])
        #expect(state?.removed == true)
    }

    @Test func `removing a removed pet is a no-op`() {
        given(Pet.self, [F.registered(), .removed(PetRemoved(at: F.minute(1)))]).when(.remove(at: F.minute(2))).then([])
    }

    @Test func `restoring a removed pet records it`() {
        let state = given(Pet.self, [F.registered(), .removed(PetRemoved(at: F.minute(1)))])
            .when(.restore(at: F.minute(2)))
            .then([.restored(PetRestored(at: F.minute(2)))])
        #expect(state?.removed == false)
    }

    @Test func `restoring an active pet is a no-op`() {
        given(Pet.self, [F.registered()]).when(.restore(at: F.minute(1))).then([])
    }

    // MARK: Folding

    @Test func `folding a pet's decided events reproduces its state`() throws {
        var events: [PetEvent] = []
        let commands: [PetCommand] = [
            F.register(),
            F.update(name: "Max", at: F.minute(1)),
            F.update(name: "Max", at: F.minute(2)),
            F.update(breed: .set("collie"), at: F.minute(3)),
            .remove(at: F.minute(4)),
            .remove(at: F.minute(5)),
            .restore(at: F.minute(6)),
        ]
        for command in commands {
            events += try Pet.decide(command, Pet.fold(events))
        }
        #expect(events.count == 5)
        #expect(Pet.fold(events) == PetState(
            id: F.petID, name: "Max", species: "dog", breed: "collie", microchipID: "123456789",
            removed: false, createdAt: F.start, updatedAt: F.minute(6), version: 5, microchipRegisteredAt: F.start
        ))
    }

    @Test func `the version counts the events applied and updatedAt follows the latest`() {
        let registered = Pet.fold([F.registered()])
        #expect(registered?.version == 1)
        #expect(registered?.createdAt == F.start)
        #expect(registered?.updatedAt == F.start)
        let renamed = Pet.evolve(registered, .renamed(PetRenamed(name: "Max", at: F.minute(3))))
        #expect(renamed?.version == 2)
        #expect(renamed?.updatedAt == F.minute(3))
        #expect(renamed?.createdAt == F.start)
    }

    @Test func `folding from a snapshot equals folding the whole history`() {
        let head: [PetEvent] = [F.registered(), .renamed(PetRenamed(name: "Max", at: F.minute(1)))]
        let tail: [PetEvent] = [.removed(PetRemoved(at: F.minute(2)))]
        #expect(Pet.fold(tail, from: Pet.fold(head)) == Pet.fold(head + tail))
    }

    @Test func `events before a registration leave no pet, because evolve is total`() {
        #expect(Pet.fold([.renamed(PetRenamed(name: "Max", at: F.start)), .removed(PetRemoved(at: F.start))]) == nil)
    }
}
