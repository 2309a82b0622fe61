import Database
import Domain
import EventLog
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import Operations
import Projectors
import Tenancy

/// `/api/pets`: commands become events through the Pet decider; reads come from the `pets`
/// read model, which a command brings up to date before it answers (read-your-writes).
struct PetRoutes {
    let catalog: Catalog
    let pets: PetOperations
    let commands: CommandResponder
    let table: RouteTable

    static let writers: Set<Role> = [.admin, .member]
    static let readers: Set<Role> = [.admin, .member, .auditor]

    struct PetBody: Encodable, JSONWritable {
        let id: String
        let name: String
        let species: String
        let breed: String?
        let microchipId: String?
        let microchipRegisteredAt: Date?
        let deleted: Bool
        let createdAt: Date
        let updatedAt: Date
        let version: Int

        enum CodingKeys: String, CodingKey { case id, name, species, breed, microchipId, microchipRegisteredAt, deleted, createdAt, updatedAt, version }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(id, forKey: .id)
            try container.encode(name, forKey: .name)
            try container.encode(species, forKey: .species)
            try container.encode(breed, forKey: .breed)
            try container.encode(microchipId, forKey: .microchipId)
            try container.encode(microchipRegisteredAt, forKey: .microchipRegisteredAt)
            try container.encode(deleted, forKey: .deleted)
            try container.encode(createdAt, forKey: .createdAt)
            try container.encode(updatedAt, forKey: .updatedAt)
            try container.encode(version, forKey: .version)
        }

        /// Keys in sorted order, as `JSONResponse.encoder` writes them.
        func write(to writer: inout JSONWriter) {
            writer.object { writer in
                writer.key("breed"); writer.string(breed)
                writer.key("created_at"); writer.time(createdAt)
                writer.key("deleted"); writer.bool(deleted)
                writer.key("id"); writer.string(id)
                writer.key("microchip_id"); writer.string(microchipId)
                writer.key("microchip_registered_at"); writer.time(microchipRegisteredAt)
                writer.key("name"); writer.string(name)
                writer.key("species"); writer.string(species)
                writer.key("updated_at"); writer.time(updatedAt)
                writer.key("version"); writer.int(version)
            }
        }

        init(_ state: PetState) {
            id = state.id.uuidString.lowercased()
            name = state.name
            species = state.species
            breed = state.breed
            microchipId = state.microchipID
            microchipRegisteredAt = state.microchipRegisteredAt
            deleted = state.removed
            createdAt = state.createdAt
            updatedAt = state.updatedAt
            version = state.version
        }
    }

    func register(on group: RouterGroup<TenantRequestContext>) {
        group.route(.post, "/pets", roles: Self.writers, in: table) { request, context in try await create(request, context) }
        group.route(.get, "/pets", roles: Self.readers, in: table) { request, context in try await list(request, context) }
        group.route(.get, "/pets/{id}", roles: Self.readers, in: table) { request, context in try await show(request, context) }
        group.route(.patch, "/pets/{id}", roles: Self.writers, in: table) { request, context in try await update(request, context) }
        group.route(.delete, "/pets/{id}", roles: Self.writers, in: table) { request, context in try await remove(request, context) }
        group.route(.get, "/pets/{id}/history", roles: Self.readers, in: table) { request, context in try await history(request, context) }
    }

    // MARK: - Commands

    func create(_ request: Request, _ context: TenantRequestContext) async throws -> Response {
        var body = try await JSONBody.read(request, context: context, allowed: ["id", "name", "species", "breed", "microchip_id"])
        let idText = body.string("id")
        let name = body.string("name", required: true)
        let species = body.string("species", required: true)
        let breed = body.string("breed")
        let microchip = body.string("microchip_id")
        try body.finish()
        let id: UUID
        if let idText {
            guard let parsed = UUID(uuidString: idText) else {
                throw Problem.badRequest("id must be a UUID.", errors: [.init(field: "id", message: "must be a UUID")])
            }
            id = parsed
        } else {
            id = UUID.random()
        }
        let handle = catalog.handle(for: context.tenant)
        let now = Date()
        return try await commands.respond(context) { session in
            let (state, version) = try await execute(handle, id: id, context: context, assumeNew: true, in: session) { _ in
                .register(id: id, name: name ?? "", species: species ?? "", breed: breed, microchipID: microchip, at: now)
            }
            guard let state else { throw Problem.internalError() }
            return Reply(JSONResponse.make(PetBody(state), status: .created,
                                               headers: [.location: "/api/pets/\(id.uuidString.lowercased())", .eTag: "\"\(version)\""]))
        }
    }

    func update(_ request: Request, _ context: TenantRequestContext) async throws -> Response {
        let id = try petID(context)
        let expected = try ifMatch(request)
        var body = try await JSONBody.read(request, context: context, allowed: ["name", "species", "breed", "microchip_id"])
        let name = body.string("name", nullable: false)
        let species = body.string("species", nullable: false)
        let breed = body.nullableString("breed")
        let microchip = body.nullableString("microchip_id")
        try body.finish()
        let handle = catalog.handle(for: context.tenant)
        let now = Date()
        return try await commands.respond(context) { session in
            let (state, version) = try await execute(handle, id: id, context: context, expected: expected, in: session) { _ in
                .update(name: name, species: species, breed: breed, microchipID: microchip, at: now)
            }
            guard let state else { throw Problem.notFound() }
            if state.removed, !(try await pets.includeDeleted(in: session)) { throw Problem.notFound() }
            return Reply(JSONResponse.make(PetBody(state), headers: [.eTag: "\"\(version)\""]))
        }
    }

    func remove(_ request: Request, _ context: TenantRequestContext) async throws -> Response {
        let id = try petID(context)
        let expected = try ifMatch(request)
        let handle = catalog.handle(for: context.tenant)
        let now = Date()
        return try await commands.respond(context) { session in
            _ = try await execute(handle, id: id, context: context, expected: expected, in: session) { _ in .remove(at: now) }
            return Reply(Response(status: .noContent))
        }
    }

    /// Runs a pet command and waits until the read model shows its effect.
    func execute(
        _ handle: TenantHandle, id: UUID, context: TenantRequestContext, expected: Int? = nil, assumeNew: Bool = false,
        in session: TenantSession, _ command: @Sendable (PetState?) -> PetCommand
    ) async throws -> (PetState?, Int) {
        let metadata = EventMetadata(actor: context.principal.actor, requestID: context.requestID, correlationID: context.requestID)
        return try await pets.execute(handle, id: id, metadata: metadata, expected: expected, assumeNew: assumeNew, in: session, command)
    }

    // MARK: - Queries

    func show(_ request: Request, _ context: TenantRequestContext) async throws -> Response {
        let id = try petID(context)
        let handle = catalog.handle(for: context.tenant)
        if let asOf = try Self.asOf(request) {
            guard let state = try await pets.pet(handle, id: id, at: asOf) else { throw Problem.notFound() }
            if state.removed, !(try await pets.includeDeleted(handle)) { throw Problem.notFound() }
            return JSONResponse.make(PetBody(state), headers: [.eTag: "\"\(state.version)\""])
        }
        // Written by the database (Schema/0020): the same bytes `PetBody` writes.
        guard let pet = try await pets.petJSON(handle, id: id), !pet.removed || pet.includeDeleted else { throw Problem.notFound() }
        return Response(status: .ok, headers: [.contentType: "application/json", .eTag: "\"\(pet.version)\""],
                        body: .init(byteBuffer: pet.body))
    }

    func list(_ request: Request, _ context: TenantRequestContext) async throws -> Response {
        let query = try QueryParameters(request, allowed: ["limit", "cursor", "species"])
        let limit = try Pagination.limit(query, default: 20, maximum: 100)
        let after = try Pagination.cursor(query).map { raw -> Int64 in
            guard let seq = Int64(raw), seq >= 0 else { throw Problem.badRequest("The cursor is not one this server issued.") }
            return seq
        } ?? 0
        let species = query["species"]
        if let species, species.isEmpty || species.count > 50 || Validation.containsControlCharacter(species) {
            // No species holds a control character; a NUL would not even reach the database as text.
            throw Problem.badRequest("species must be 1 to 50 characters, none of them control characters.",
                                     errors: [.init(field: "species", message: "must be 1 to 50 characters without control characters")])
        }
        let handle = catalog.handle(for: context.tenant)
        // The items come written by the database (Schema/0020): the same bytes `PetBody` writes.
        let page = try await pets.pageJSON(handle, after: after, species: species, limit: limit)
        let next = page.more ? page.lastSeq.map { Pagination.encode(String($0)) } : nil
        var body = ByteBuffer()
        body.reserveCapacity(page.items.readableBytes + 64)
        body.writeStaticString(#"{"items":["#)
        body.writeImmutableBuffer(page.items)
        body.writeStaticString(#"],"next_cursor":"#)
        if let next { body.writeString("\"\(next)\"") } else { body.writeStaticString("null") }
        body.writeStaticString("}")
        return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: body))
    }

    struct HistoryItem: Encodable {
        let seq: Int64
        let version: Int
        let type: String
        let data: JSONValue
        let metadata: JSONValue
        let recordedAt: String

        enum CodingKeys: String, CodingKey { case seq, version, type, data, metadata, recordedAt }
    }

    func history(_ request: Request, _ context: TenantRequestContext) async throws -> Response {
        let id = try petID(context)
        let handle = catalog.handle(for: context.tenant)
        let until = try Self.asOf(request)
        let events = try await pets.history(handle, id: id, until: until)
        guard !events.isEmpty else { throw Problem.notFound() }
        let items = events.map {
            HistoryItem(seq: $0.seq, version: $0.streamVersion, type: $0.type, data: $0.data, metadata: $0.metadataJSON, recordedAt: $0.recordedAtText)
        }
        return try JSONResponse.make(["items": items])
    }

    // MARK: - Helpers

    /// A pet id; anything not a UUID cannot name a pet, so it is the same 404 as a missing one.
    func petID(_ context: TenantRequestContext) throws -> UUID {
        guard let raw = context.parameters.get("id"), let id = UUID(uuidString: raw) else { throw Problem.notFound() }
        return id
    }

    /// `If-Match: "3"` → 3; `*` or absent → nil; anything else is a 400.
    func ifMatch(_ request: Request) throws -> Int? {
        guard let raw = request.headers[.ifMatch]?.trimmingCharacters(in: .whitespaces) else { return nil }
        if raw == "*" { return nil }
        let unquoted = raw.hasPrefix("W/") ? String(raw.dropFirst(2)) : raw
        guard unquoted.count >= 3, unquoted.first == "\"", unquoted.last == "\"", let version = Int(unquoted.dropFirst().dropLast()), version >= 0 else {
            throw Problem.badRequest("If-Match must be an ETag this server sent, such as \"3\".")
        }
        return version
    }

    /// `as_of`: an RFC 3339 time from the epoch on, not in the future; the only query parameter.
    static func asOf(_ request: Request) throws -> Date? {
        guard let date = try QueryParameters(request, allowed: ["as_of"]).time("as_of") else { return nil }
        guard date <= Date() else {
            throw Problem.badRequest("as_of is in the future.", errors: [.init(field: "as_of", message: "is in the future")])
        }
        return date
    }
}
