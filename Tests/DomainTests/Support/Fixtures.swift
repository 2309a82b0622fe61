import Domain
import Foundation

/// Fixed times and ids, so every spec is as deterministic as the deciders.
enum Fixture {
    static let start = Date(timeIntervalSince1970: 1_800_000_000)

    static func minute(_ n: Int) -> Date {
        start.addingTimeInterval(TimeInterval(n * 60))
    }

    static func id(_ n: Int) -> UUID {
        UUID(uuidString: String(format: "00000000-0000-4000-8000-%012d", n)) ?? UUID()
    }

    static let petID = id(1)
    static let tenantID = id(100)
    static let aliceID = id(200)
    static let bobID = id(201)
    static let keyID = id(300)

    static func registered(
        name: String = "Rex", species: String = "dog", breed: String? = "beagle", microchipID: String? = "123456789", at: Date = start
    ) -> PetEvent {
        .registered(PetRegistered(petID: petID, name: name, species: species, breed: breed, microchipID: microchipID, at: at))
    }

    static func register(
        name: String = "Rex", species: String = "dog", breed: String? = "beagle", microchipID: String? = "123456789"
    ) -> PetCommand {
        .register(id: petID, name: name, species: species, breed: breed, microchipID: microchipID, at: start)
    }

    static func update(
        name: String? = nil, species: String? = nil, breed: FieldChange<String> = .unchanged,
        microchipID: FieldChange<String> = .unchanged, at: Date = minute(1)
    ) -> PetCommand {
        .update(name: name, species: species, breed: breed, microchipID: microchipID, at: at)
    }

    static func created(slug: String = "acme", plan: Plan = .basic, at: Date = start) -> TenantEvent {
        .created(TenantCreated(tenantID: tenantID, slug: slug, name: "Acme Pets", plan: plan, placement: plan.defaultPlacement, at: at))
    }

    static let aliceAdded = TenantEvent.userAdded(UserAdded(userID: aliceID, email: "alice@acme.test", role: .admin, at: minute(1)))
    static let keyIssued = TenantEvent.apiKeyIssued(ApiKeyIssued(keyID: keyID, prefix: "ps_abc123", userID: aliceID, role: .admin, at: minute(2)))
}
