import Database
import Domain
import EventLog
import Foundation
import Operations
import PetstoreTesting
import PostgresNIO
import Projectors
import Testing

@Suite struct ReplayTests {
    let logger = TestCluster.logger

    /// Pets rows as text, for comparing read models (times at microseconds, as stored).
    func snapshot(_ database: TestDatabase) async throws -> [String] {
        let pets = try await rows(database.superuserURL, """
            SELECT concat_ws('|', tenant_id, id, registered_seq, name, species, coalesce(breed, '∅'), coalesce(microchip_id, '∅'),
                             deleted, created_at, updated_at, version)
              FROM public.pets ORDER BY tenant_id, id
            """, as: String.self)
        let config = try await rows(database.superuserURL,
            "SELECT concat_ws('|', tenant_id, key, value::text, updated_at) FROM public.tenant_config ORDER BY tenant_id, key", as: String.self)
        return pets + config
    }

    @Test(arguments: [1, 2, 3, 4, 5, 6, 7, 8] as [UInt64])
    func `random command sequences project live exactly as a rebuild from the log does, and as the deciders fold`(seed: UInt64) async throws {
        var random = SeededGenerator(seed: seed)
        let database = try await TestCluster.shared.database()
        try await database.withAppClient { client in
            let store = EventStore(client: client, logger: logger)
            let runtime = ProjectionRuntime(client: client, store: store, projectors: ReadModels.all, batchSize: 13, logger: logger)
            let tenants = (0..<3).map { _ in TenantID() }
            var pets: [TenantID: [UUID: (state: PetState?, version: Int)]] = [:]
            var configs: [TenantID: (state: TenantConfigState, version: Int)] = [:]
            var clock = Date(timeIntervalSince1970: 1_800_000_000)
            let names = ["Rex", "Tom", "Bella", "Max", "Luna", "Rex", "Ünïcødé 🐶"]
            let species = ["dog", "cat", "parrot"]

            for step in 0..<120 {
                clock += Double(Int.random(in: 1...5_000, using: &random)) / 1000
                let tenant = tenants.randomElement(using: &random)!
                if Int.random(in: 0..<5, using: &random) == 0 {
                    let key = ["include_deleted_pets", "theme", "limits.max_pets"].randomElement(using: &random)!
                    let value: ConfigValue = key == "include_deleted_pets" ? .bool(Bool.random(using: &random))
                        : key == "theme" ? .string(["dark", "light"].randomElement(using: &random)!) : .number(Double(Int.random(in: 1...99, using: &random)))
                    let command: TenantConfigCommand = Bool.random(using: &random) ? .set(key: key, value: value, at: clock) : .unset(key: key, at: clock)
                    let current = configs[tenant] ?? (TenantConfigState(), 0)
                    let events = try TenantConfig.decide(command, current.state)
                    guard !events.isEmpty else { continue }
                    try await store.append(tenant: tenant, stream: try StreamName(type: ConfigEventCoding.streamType, id: tenant.rawValue),
                                           expected: current.version == 0 ? .noStream : .exact(current.version),
                                           events: try events.map { event throws(EventLogError) in try ConfigEventCoding.encode(event) })
                    configs[tenant] = (TenantConfig.fold(events, from: current.state), current.version + events.count)
                } else {
                    let known = Array(pets[tenant, default: [:]].keys).sorted { $0.uuidString < $1.uuidString }
                    let id = known.isEmpty || Int.random(in: 0..<3, using: &random) == 0 ? UUID() : known.randomElement(using: &random)!
                    let current = pets[tenant, default: [:]][id] ?? (nil, 0)
                    let command: PetCommand
                    switch Int.random(in: 0..<5, using: &random) {
                    case 0 where current.state != nil: command = .remove(at: clock)
                    case 1 where current.state != nil: command = .restore(at: clock)
                    case 2 where current.state != nil:
                        command = .update(name: nil, species: species.randomElement(using: &random)!,
                                          breed: Bool.random(using: &random) ? .set("Mixed") : .clear,
                                          microchipID: Bool.random(using: &random) ? .set("123456789") : .unchanged, at: clock)
                    case _ where current.state != nil:
                        command = .update(name: names.randomElement(using: &random)!, species: nil, breed: .unchanged, microchipID: .unchanged, at: clock)
                    default:
                        command = .register(id: id, name: names.randomElement(using: &random)!, species: species.randomElement(using: &random)!,
                                            breed: nil, microchipID: nil, at: clock)
                    }
                    let events: [PetEvent]
                    do { events = try Pet.decide(command, current.state) } catch { continue }
                    guard !events.isEmpty else { continue }
                    try await store.append(tenant: tenant, stream: try StreamName(type: PetEventCoding.streamType, id: id),
                                           expected: current.version == 0 ? .noStream : .exact(current.version),
                                           events: try events.map { event throws(EventLogError) in try PetEventCoding.encode(event) })
                    pets[tenant, default: [:]][id] = (Pet.fold(events, from: current.state), current.version + events.count)
                }
                // The live projector runs now and then, mid-stream.
                if step % 17 == 0 { try await runtime.catchUpAll() }
            }
            try await runtime.catchUpAll()
            let live = try await snapshot(database)

            // The deciders' own fold is the oracle for every pet row.
            let petRows = try await rows(database.superuserURL,
                "SELECT tenant_id, id, name, species, breed, microchip_id, deleted, version FROM public.pets", as: (UUID, UUID, String, String, String?, String?, Bool, Int).self)
            let expectedCount = pets.values.reduce(0) { $0 + $1.values.filter { $0.state != nil }.count }
            #expect(petRows.count == expectedCount)
            for row in petRows {
                let state = try #require(pets[TenantID(row.0)]?[row.1]?.state)
                #expect(row.2 == state.name && row.3 == state.species && row.4 == state.breed && row.5 == state.microchipID
                        && row.6 == state.removed && row.7 == state.version, "seed \(seed): pet \(row.1)")
            }

            // Drop the read models and rebuild them from the log.
            try await database.superuserURL.withConnection(logger: logger) { connection in
                try await connection.execute("DELETE FROM public.pets", logger: logger)
                try await connection.execute("DELETE FROM public.tenant_config", logger: logger)
                try await connection.execute("UPDATE projection_checkpoints SET applied_seq = 0", logger: logger)
            }
            #expect(try await snapshot(database).isEmpty)
            try await runtime.catchUpAll()
            #expect(try await snapshot(database) == live, "seed \(seed): rebuild differs from live")
        }
    }
}
