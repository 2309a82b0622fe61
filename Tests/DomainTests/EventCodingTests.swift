import Domain
import Foundation
import Testing

/// Events are stored by the event log with snake_case keys; these specs use the same key
/// strategies so that a name the strategies cannot round-trip ("petID") is caught here.
@Suite struct EventCodingTests {
    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.sortedKeys]
        return encoder
    }()

    static let decoder: JSONDecoder = {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return decoder
    }()

    /// Encodes `event`, checks its JSON keys, and decodes it back.
    func roundTrip<E: Codable & Equatable>(_ event: E, keys: [String], sourceLocation: SourceLocation = #_sourceLocation) throws {
        let data = try Self.encoder.encode(event)
        guard case .object(let members) = try JSONDecoder().decode(ConfigValue.self, from: data) else {
            Issue.record("not a JSON object", sourceLocation: sourceLocation)
            return
        }
        #expect(members.keys.sorted() == keys, sourceLocation: sourceLocation)
        #expect(try Self.decoder.decode(E.self, from: data) == event, sourceLocation: sourceLocation)
    }

    let at = Fixture.start

    @Test func `pet events round-trip with snake_case keys`() throws {
        try roundTrip(
            PetRegistered(petID: Fixture.petID, name: "Rex", species: "dog", breed: nil, microchipID: "123456789", at: at),
            keys: ["at", "microchip_id", "name", "pet_id", "species"])
        try roundTrip(PetRenamed(name: "Max", at: at), keys: ["at", "name"])
        try roundTrip(PetDetailsChanged(species: "cat", breed: "siamese", microchipID: "123456789", at: at), keys: ["at", "breed", "microchip_id", "species"])
        try roundTrip(PetRemoved(at: at), keys: ["at"])
        try roundTrip(PetRestored(at: at), keys: ["at"])
    }

    @Test func `tenant events round-trip with snake_case keys`() throws {
        try roundTrip(TenantCreated(tenantID: Fixture.tenantID, slug: "acme", name: "Acme", plan: .premium, placement: .schema, at: at),
                      keys: ["at", "name", "placement", "plan", "slug", "tenant_id"])
        try roundTrip(PlanChanged(from: .free, to: .basic, at: at), keys: ["at", "from", "to"])
        try roundTrip(TenantSuspended(reason: "unpaid", at: at), keys: ["at", "reason"])
        try roundTrip(TenantReactivated(at: at), keys: ["at"])
        try roundTrip(UserAdded(userID: Fixture.aliceID, email: "a@b.c", role: .auditor, at: at), keys: ["at", "email", "role", "user_id"])
        try roundTrip(ApiKeyRevoked(keyID: Fixture.keyID, at: at), keys: ["at", "key_id"])
        try roundTrip(OffboardingRequested(at: at), keys: ["at"])
        try roundTrip(UserErased(userID: Fixture.bobID, at: at), keys: ["at", "user_id"])
    }

    @Test func `an issued key's event carries only its id, prefix, user and role`() throws {
        try roundTrip(ApiKeyIssued(keyID: Fixture.keyID, prefix: "ps_abc", userID: Fixture.aliceID, role: .member, at: at),
                      keys: ["at", "key_id", "prefix", "role", "user_id"])
    }

    @Test func `config events round-trip with the tenant's keys untouched`() throws {
        try roundTrip(ConfigValueSet(key: "ui.theme", value: .object(["darkMode": .bool(true)]), at: at), keys: ["at", "key", "value"])
        try roundTrip(ConfigValueUnset(key: "ui.theme", at: at), keys: ["at", "key"])
        let data = try Self.encoder.encode(ConfigValueSet(key: "ui.theme", value: .object(["darkMode": .bool(true)]), at: at))
        #expect(String(decoding: data, as: UTF8.self).contains(#""darkMode":true"#))
    }

    @Test func `event type names match the struct names`() {
        #expect([PetRegistered.eventType, PetRenamed.eventType, PetDetailsChanged.eventType, PetRemoved.eventType, PetRestored.eventType]
            == ["PetRegistered", "PetRenamed", "PetDetailsChanged", "PetRemoved", "PetRestored"])
        #expect([TenantCreated.eventType, PlanChanged.eventType, TenantSuspended.eventType, TenantReactivated.eventType, UserAdded.eventType,
                  ApiKeyIssued.eventType, ApiKeyRevoked.eventType, OffboardingRequested.eventType, UserErased.eventType]
            == ["TenantCreated", "PlanChanged", "TenantSuspended", "TenantReactivated", "UserAdded", "ApiKeyIssued", "ApiKeyRevoked",
                "OffboardingRequested", "UserErased"])
        #expect([ConfigValueSet.eventType, ConfigValueUnset.eventType] == ["ConfigValueSet", "ConfigValueUnset"])
        #expect(Fixture.registered().eventType == PetRegistered.eventType)
        #expect(Fixture.keyIssued.eventType == ApiKeyIssued.eventType)
        #expect(TenantConfigEvent.unset(ConfigValueUnset(key: "a", at: at)).eventType == ConfigValueUnset.eventType)
    }

    @Test func `states survive a JSON round trip`() throws {
        let pet = Pet.fold([Fixture.registered()])
        #expect(try JSONDecoder().decode(PetState?.self, from: JSONEncoder().encode(pet)) == pet)
        let tenant = Tenant.fold([Fixture.created(), Fixture.aliceAdded, Fixture.keyIssued])
        #expect(try JSONDecoder().decode(TenantState?.self, from: JSONEncoder().encode(tenant)) == tenant)
    }

    @Test func `error codes have stable snake_case names`() {
        #expect([DomainError.Code.validation, .notFound, .alreadyExists, .removed, .conflict].map(\.rawValue)
            == ["validation", "not_found", "already_exists", "removed", "conflict"])
    }
}
