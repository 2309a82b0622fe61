import Database
import Domain
import EventLog
import Foundation
import Logging
import PostgresNIO
import Projectors
import Tenancy

/// What the API does with pets: commands that wait for the read model to show them, and the
/// reads it serves, from the read model or, for a past time, from the log.
public struct PetOperations: Sendable {
    let runtime: ProjectionRuntime
    let logger: Logger
    let pages: PetPageCache?

    public init(runtime: ProjectionRuntime, logger: Logger, pages: PetPageCache? = nil) {
        self.runtime = runtime
        self.logger = logger
        self.pages = pages
    }

    /// Runs a pet command in the unit of work `session`, the pets read model brought up to date in
    /// it too, so the caller reads its own write once it commits. Returns the pet after the
    /// command and its version.
    public func execute(
        _ handle: TenantHandle, id: UUID, metadata: EventMetadata, expected: Int? = nil, assumeNew: Bool = false,
        in session: TenantSession, _ command: @Sendable (PetState?) -> PetCommand
    ) async throws -> (PetState?, Int) {
        let outcome = try await PetCommands.runner(store: handle.store).run(
            id: id, metadata: metadata, expected: expected, assumeNew: assumeNew, in: session, command)
        if let append = outcome.append {
            try await runtime.projectInline(session, projections: ["pets"], through: append.lastSeq, appended: outcome.recorded,
                                            using: handle.store.database)
        }
        return (outcome.state, outcome.version)
    }

    /// The pet as the read model has it, written as the API's JSON by the database, with whether
    /// it is removed, its version, and whether the tenant shows removed pets.
    public func petJSON(_ handle: TenantHandle, id: UUID) async throws -> (body: ByteBuffer, removed: Bool, version: Int, includeDeleted: Bool)? {
        try await handle.readTenant { session in try await session.call(ReadPetJSON(pet: id)).first }
    }

    /// The pet as it was at `time`, folded from its stream.
    public func pet(_ handle: TenantHandle, id: UUID, at time: Date) async throws -> PetState? {
        try await handle.readTenant { session in try await PetCommands.runner(store: handle.store).load(id: id, until: time, in: session).0 }
    }

    /// Up to `limit` pets registered after `after` (a registration seq), in registration order,
    /// written as the API's JSON by the database: the array's items (without brackets), the
    /// registration seq of the last one, and whether more follow.
    ///
    /// With a page cache, a page held is served again when the database says nothing it was
    /// made from has changed, in the statement that would otherwise make it again.
    public func pageJSON(_ handle: TenantHandle, after: Int64, species: String?, limit: Int) async throws -> (items: ByteBuffer, lastSeq: Int64?, more: Bool) {
        let size = Int32(clamping: limit)
        guard let pages else {
            return try await handle.readTenant { session in
                try await session.call(ReadPetsPage(after: after, species: species, limit: size)).first ?? (ByteBuffer(), nil, false)
            }
        }
        let key = PetPageCache.Key(tenant: handle.tenant.id, after: after, species: species, limit: limit)
        let held = pages.page(for: key)
        let row = try await handle.readTenant { session in
            try await session.call(ReadPetsPageValidated(after: after, species: species, limit: size, known: held?.validator)).first
        }
        guard let row else { return (ByteBuffer(), nil, false) }
        if let held, row.validator == held.validator, row.items == nil {
            pages.counted(hit: true)
            return (held.items, held.lastSeq, held.more)
        }
        guard let items = row.items else {
            throw DatabaseError(.unreachable, "read_pets_page_v3 answered no page for a validator it was not given")
        }
        pages.counted(hit: false)
        if let validator = row.validator {
            pages.store(key, validator: validator, items: items, lastSeq: row.lastSeq, more: row.more ?? false)
        }
        return (items, row.lastSeq, row.more ?? false)
    }

    /// The pet's events, up to `until` when given.
    public func history(_ handle: TenantHandle, id: UUID, until: Date?) async throws -> [RecordedEvent] {
        try await handle.store.read(tenant: handle.tenant.id, stream: try StreamName(type: PetEventCoding.streamType, id: id), until: until)
    }

    /// Whether this tenant lists removed pets, from its configuration.
    public func includeDeleted(_ handle: TenantHandle) async throws -> Bool {
        try await handle.readTenant { session in try await includeDeleted(in: session) }
    }

    /// As `includeDeleted(_:)`, inside a unit of work already open.
    public func includeDeleted(in session: TenantSession) async throws -> Bool {
        let rows = try await session.query("""
            SELECT value = 'true'::jsonb FROM tenant_config WHERE tenant_id = \(session.tenant) AND key = 'include_deleted_pets'
            """)
        return try await rows.decode(Bool.self).first(where: { _ in true }) ?? false
    }
}

/// `read_pet_json_v2(tenant, id)`: a pet as JSON and what the route decides on, in one statement.
struct ReadPetJSON: TenantFunction {
    static let name = "read_pet_json_v2"
    static let parameterTypes = ["uuid"]
    typealias Row = (body: ByteBuffer, removed: Bool, version: Int, includeDeleted: Bool)

    let pet: UUID

    func bind(into bindings: inout PostgresBindings) { bindings.append(pet) }

    func decodeRow(_ row: PostgresRow) throws -> Row {
        let r = try row.decode((ByteBuffer, Bool, Int32, Bool).self)
        return (r.0, r.1, Int(r.2), r.3)
    }
}

/// `read_pets_page_v2(tenant, after, species, limit)`: a page of the list as JSON, in one row.
struct ReadPetsPage: TenantFunction {
    static let name = "read_pets_page_v2"
    static let parameterTypes = ["bigint", "text", "integer"]
    typealias Row = (items: ByteBuffer, lastSeq: Int64?, more: Bool)

    let after: Int64
    let species: String?
    let limit: Int32

    func bind(into bindings: inout PostgresBindings) {
        bindings.append(after)
        bindings.append(species)
        bindings.append(limit)
    }

    func decodeRow(_ row: PostgresRow) throws -> Row {
        let r = try row.decode((ByteBuffer, Int64?, Bool).self)
        return (r.0, r.1, r.2)
    }
}

/// `read_pets_page_v3(tenant, after, species, limit, known)`: the validator of what a page is
/// made from, and the page unless `known` is that validator (Schema/0022).
struct ReadPetsPageValidated: TenantFunction {
    static let name = "read_pets_page_v3"
    static let parameterTypes = ["bigint", "text", "integer", "text"]
    typealias Row = (validator: String?, items: ByteBuffer?, lastSeq: Int64?, more: Bool?)

    let after: Int64
    let species: String?
    let limit: Int32
    let known: String?

    func bind(into bindings: inout PostgresBindings) {
        bindings.append(after)
        bindings.append(species)
        bindings.append(limit)
        bindings.append(known)
    }

    func decodeRow(_ row: PostgresRow) throws -> Row {
        let r = try row.decode((String?, ByteBuffer?, Int64?, Bool?).self)
        return (r.0, r.1, r.2, r.3)
    }
}
