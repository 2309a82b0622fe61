import Database
import Domain
import EventLog
import Foundation
import Logging
import PostgresNIO
import Projectors

/// The application's read models, which the projection runtime keeps up to date.
public enum ReadModels {
    public static var all: [any Projector] { [PetsProjector(), TenantConfigProjector(), AnalyticsProjector()] }
}

/// `pets`: one row per pet, from the pet stream's events.
public struct PetsProjector: Projector {
    public let name = "pets"
    /// Commands catch this read model up themselves; the background loop only brings in what
    /// others appended (other processes, the CLI), so it can wait for bursts to collapse.
    public let pacing: Duration = .milliseconds(100)
    public let streamTypes: Set<String>? = [PetEventCoding.streamType]

    public init() {}

    public func apply(_ events: [RecordedEvent], in session: TenantSession) async throws {
        let tenant = session.tenant
        // Registrations are gathered and written with one INSERT; any other event writes what was
        // gathered first, so rows change in log order.
        var registrations = Registrations()
        for event in events where event.stream.type == PetEventCoding.streamType {
            let id = event.stream.id
            let version = event.streamVersion
            let decoded = try PetEventCoding.decode(event)
            if case .registered(let registered) = decoded {
                registrations.add(id: id, seq: event.seq, registered: registered, version: version)
                continue
            }
            try await registrations.flush(in: session)
            switch decoded {
            case .registered:
                break
            case .renamed(let renamed):
                try await session.run("""
                    UPDATE pets SET name = \(renamed.name), updated_at = \(renamed.at), version = \(version)
                     WHERE tenant_id = \(tenant) AND id = \(id)
                    """)
            case .detailsChanged(let changed):
                try await session.run("""
                    UPDATE pets SET species = \(changed.species), breed = \(changed.breed), microchip_id = \(changed.microchipID),
                                    updated_at = \(changed.at), version = \(version)
                     WHERE tenant_id = \(tenant) AND id = \(id)
                    """)
            case .removed(let removed):
                try await session.run("""
                    UPDATE pets SET deleted = true, updated_at = \(removed.at), version = \(version)
                     WHERE tenant_id = \(tenant) AND id = \(id)
                    """)
            case .restored(let restored):
                try await session.run("""
                    UPDATE pets SET deleted = false, updated_at = \(restored.at), version = \(version)
                     WHERE tenant_id = \(tenant) AND id = \(id)
                    """)
            }
        }
        try await registrations.flush(in: session)
    }

    /// New pets waiting to be inserted together.
    struct Registrations {
        var ids: [UUID] = []
        var seqs: [Int64] = []
        var names: [String] = []
        var species: [String] = []
        var breeds: [String] = []
        var microchips: [String] = []
        var times: [Date] = []
        var versions: [Int32] = []

        mutating func add(id: UUID, seq: Int64, registered: PetRegistered, version: Int) {
            ids.append(id)
            seqs.append(seq)
            names.append(registered.name)
            species.append(registered.species)
            // Arrays cannot hold NULL through PostgresNIO's array encoding: "" stands for none.
            breeds.append(registered.breed ?? "")
            microchips.append(registered.microchipID ?? "")
            times.append(registered.at)
            versions.append(Int32(version))
        }

        mutating func flush(in session: TenantSession) async throws {
            guard !ids.isEmpty else { return }
            try await session.execute(InsertRegisteredPets(tenant: session.tenant, registrations: self)).consume()
            self = Registrations()
        }
    }

    /// Prepared once per connection: a command's POST runs it every time, and parsing and
    /// planning it afresh cost more than running it. It names `pets` unqualified, so it writes
    /// into whichever version's schema the batch put first on the search path (PostgreSQL plans
    /// it again when that changes).
    struct InsertRegisteredPets: PostgresPreparedStatement {
        static let name = "insert_registered_pets"
        static let sql = """
            INSERT INTO pets (tenant_id, id, registered_seq, name, species, breed, microchip_id, deleted, created_at, updated_at, version)
            SELECT $1, r.id, r.seq, r.name, r.species, NULLIF(r.breed, ''), NULLIF(r.microchip, ''), false, r.at, r.at, r.version
              FROM unnest($2::uuid[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[], $8::timestamptz[], $9::int[])
                AS r(id, seq, name, species, breed, microchip, at, version)
            """
        typealias Row = ()

        let tenant: TenantID
        let registrations: Registrations

        func makeBindings() throws -> PostgresBindings {
            var bindings = PostgresBindings()
            bindings.append(tenant)
            bindings.append(registrations.ids)
            bindings.append(registrations.seqs)
            bindings.append(registrations.names)
            bindings.append(registrations.species)
            bindings.append(registrations.breeds)
            bindings.append(registrations.microchips)
            bindings.append(registrations.times)
            bindings.append(registrations.versions)
            return bindings
        }

        func decodeRow(_ row: PostgresRow) throws -> Row { () }
    }
}

/// `tenant_config`: the value of each key a tenant set.
public struct TenantConfigProjector: Projector {
    public let name = "tenant_config"
    /// As for pets: configuration commands catch up themselves, and a pet command moves this
    /// checkpoint past its events when nothing came between (`streamTypes`).
    public let pacing: Duration = .milliseconds(100)
    public let streamTypes: Set<String>? = [ConfigEventCoding.streamType]

    public init() {}

    /// No key strategy: a tenant's own keys inside a value are data, kept as written.
    public static let valueEncoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()

    public func apply(_ events: [RecordedEvent], in session: TenantSession) async throws {
        let tenant = session.tenant
        for event in events where event.stream.type == ConfigEventCoding.streamType {
            switch try ConfigEventCoding.decode(event) {
            case .set(let set):
                let value = String(decoding: try Self.valueEncoder.encode(set.value), as: UTF8.self)
                try await session.run("""
                    INSERT INTO tenant_config (tenant_id, key, value, updated_at) VALUES (\(tenant), \(set.key), \(value)::jsonb, \(set.at))
                    ON CONFLICT (tenant_id, key) DO UPDATE SET value = EXCLUDED.value, updated_at = EXCLUDED.updated_at
                    """)
            case .unset(let unset):
                try await session.run(
                    "DELETE FROM tenant_config WHERE tenant_id = \(tenant) AND key = \(unset.key)")
            }
        }
    }
}
