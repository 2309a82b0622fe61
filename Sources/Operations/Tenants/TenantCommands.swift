import Database
import Domain
import EventLog
import Foundation
import Logging
import Tenancy

/// The tenant decider's commands (onboarding, plan and status, users and keys) through the one
/// command runner: decided from the tenant's own stream, appended to its log, and written to the
/// catalog tables as the inline work of the same unit of work, so auditors see every change.
///
/// Each takes the unit of work it runs in, or opens one of its own. Errors are `TenancyError`s.
public struct TenantCommands: Sendable {
    let catalog: Catalog

    public init(catalog: Catalog) {
        self.catalog = catalog
    }

    var runner: CommandRunner<Tenant> { Tenant.runner(store: catalog.store) }

    /// The tenant's state as its own events tell it.
    public func state(of tenant: TenantID) async throws(TenancyError) -> TenantState? {
        do {
            return try await catalog.store.database.readTenant(tenant) { session in try await runner.load(id: tenant.rawValue, in: session).0 }
        } catch {
            throw TenancyError.storage("the tenant's history could not be read", cause: error)
        }
    }

    /// The tenant's state as its own events tell it, read in `session`.
    public func state(in session: TenantSession) async throws(TenancyError) -> TenantState? {
        do {
            return try await runner.load(id: session.tenant.rawValue, in: session).0
        } catch {
            throw TenancyError.storage("the tenant's history could not be read", cause: error)
        }
    }

    /// Creates a tenant in status `provisioning`. A taken slug is `slugTaken`, whatever the race.
    /// `server` names where a tenant placed in a database of its own gets it (main by default).
    public func create(
        slug: String, name: String, plan: Plan, placement: Placement? = nil, server: String? = nil, metadata: EventMetadata, at: Date = Date()
    ) async throws(TenancyError) -> TenantRecord {
        let chosen = try catalog.placement(for: plan, requested: placement)
        let id = TenantID()
        if let server, chosen != .database, server != ServerRegistry.main {
            throw TenancyError(.invalid, "only a tenant placed in a database of its own can be on another server",
                               fieldErrors: [.init(field: "server", message: "needs placement database")])
        }
        if chosen == .database {
            return try await reserve(id, slug: slug, name: name, plan: plan, server: server ?? ServerRegistry.main, at: at)
        }
        try await run(on: id, metadata: metadata, assumeNew: true) { state throws(DomainError) in
            try Tenant.decide(.create(id: id.rawValue, slug: slug, name: name, plan: plan, placement: chosen, at: at), state)
        }
        guard let record = try await catalog.tenant(id: id) else { throw TenancyError(.storage, "the new tenant was not found") }
        return record
    }

    /// A tenant placed in a database of its own starts as its mirror row in the main database,
    /// which takes the slug and names the database before the database exists: however
    /// onboarding ends, no database is left that no catalog row names. `establish` then makes
    /// the database and records the tenant's creation there.
    private func reserve(_ id: TenantID, slug: String, name: String, plan: Plan, server: String, at: Date) async throws(TenancyError) -> TenantRecord {
        guard try await ServerRegistry(client: catalog.client, logger: catalog.logger).server(named: server) != nil else {
            throw TenancyError(.invalid, "no server is named \(server)", fieldErrors: [.init(field: "server", message: "is not a registered server")])
        }
        do {
            try await catalog.store.database.onControlPlane.withTenant(id) { session in
                try await session.run("""
                    INSERT INTO tenants (id, slug, name, plan, status, placement, location, server, created_at, updated_at)
                    VALUES (\(id), \(slug), \(name), \(plan.rawValue), 'provisioning', 'database', \(HomeDatabases.name(for: id)), \(server), \(at), \(at))
                    """)
                try await Catalog.announce(in: session)
            }
        } catch {
            throw Catalog.map(error)
        }
        guard let record = try await catalog.tenant(id: id) else { throw TenancyError(.storage, "the new tenant was not found") }
        return record
    }

    /// Makes a reserved tenant's database (or finishes making it) and records the tenant's
    /// creation in its log there; nothing for a tenant whose creation is recorded already.
    public func establish(_ tenant: TenantRecord, metadata: EventMetadata) async throws(TenancyError) {
        guard tenant.placement == .database, let name = tenant.location else { return }
        guard let pools = catalog.store.database.homePools else {
            throw TenancyError(.unavailable, "this process cannot reach databases of their own")
        }
        do {
            try await HomeDatabases.ensure(name, on: try await pools.url(of: tenant.server), logger: catalog.logger)
        } catch {
            throw TenancyError(.unavailable, "the tenant's database could not be made on server \(tenant.server): \(DatabaseURL.describe(error)); run onboarding again to resume")
        }
        do {
            // The ledger says which build the database was made for (`petstore migrate` reads it).
            try await catalog.store.database.onControlPlane.withTenant(tenant.id) { session in
                try await session.run("SELECT record_tenant_database(\(session.tenant), \(try HomeDatabases.fingerprint))")
            }
        } catch {
            throw Catalog.map(error)
        }
        guard try await state(of: tenant.id) == nil else { return }
        try await run(on: tenant.id, metadata: metadata, assumeNew: true) { state throws(DomainError) in
            try Tenant.decide(.create(id: tenant.id.rawValue, slug: tenant.slug, name: tenant.name, plan: tenant.plan, placement: .database,
                                      at: tenant.createdAt), state)
        }
    }

    /// Runs a tenant command (activation, plan, status, users, key revocation) and returns the new state.
    @discardableResult
    public func execute(
        _ command: TenantCommand, on tenant: TenantID, metadata: EventMetadata, in session: TenantSession? = nil
    ) async throws(TenancyError) -> TenantState? {
        try await run(on: tenant, metadata: metadata, in: session) { state throws(DomainError) in try Tenant.decide(command, state) }.state
    }

    /// Adds a user and issues their first key in one step (what onboarding and the CLI need).
    public func addUserWithKey(
        tenant: TenantID, email: String, role: Role, metadata: EventMetadata, at: Date = Date(), in session: TenantSession? = nil
    ) async throws(TenancyError) -> (userID: UUID, keyID: UUID, key: APIKey) {
        let userID = UUID(), keyID = UUID()
        let key = APIKey.generate(.tenant)
        try await run(on: tenant, metadata: metadata, keyHashes: [keyID: key.hash], in: session) { state throws(DomainError) in
            let added = try Tenant.decide(.addUser(id: userID, email: email, role: role, at: at), state)
            return added + (try Tenant.decide(.issueApiKey(id: keyID, prefix: key.prefix, userID: userID, role: role, at: at),
                                              Tenant.fold(added, from: state)))
        }
        return (userID, keyID, key)
    }

    /// Issues another key for an existing user.
    public func issueKey(
        tenant: TenantID, userID: UUID, role: Role, metadata: EventMetadata, at: Date = Date(), in session: TenantSession? = nil
    ) async throws(TenancyError) -> (keyID: UUID, key: APIKey) {
        let keyID = UUID()
        let key = APIKey.generate(.tenant)
        try await run(on: tenant, metadata: metadata, keyHashes: [keyID: key.hash], in: session) { state throws(DomainError) in
            try Tenant.decide(.issueApiKey(id: keyID, prefix: key.prefix, userID: userID, role: role, at: at), state)
        }
        return (keyID, key)
    }

    @discardableResult
    private func run(
        on tenant: TenantID, metadata: EventMetadata, assumeNew: Bool = false, keyHashes: [UUID: [UInt8]] = [:], in session: TenantSession? = nil,
        decide: @escaping @Sendable (TenantState?) throws(DomainError) -> [TenantEvent]
    ) async throws(TenancyError) -> CommandRunner<Tenant>.Outcome {
        let catalog = self.catalog, runner = self.runner
        let work: @Sendable (TenantSession) async throws -> CommandRunner<Tenant>.Outcome = { session in
            let outcome = try await runner.run(
                id: tenant.rawValue, metadata: metadata, assumeNew: assumeNew, in: session,
                inline: { events, session in try await catalog.apply(events, keyHashes: keyHashes, in: session) },
                decide: decide)
            // Lookups by slug are cached: the change shows at once in this process.
            if !outcome.events.isEmpty, let slug = outcome.state?.slug { session.afterCommit { catalog.invalidate(slug: slug) } }
            return outcome
        }
        do {
            if let session { return try await work(session) }
            return try await catalog.store.database.withTenant(tenant) { session in try await work(session) }
        } catch let error as DomainError {
            throw TenancyError(error)
        } catch let error as EventLogError where error.code == .wrongExpectedVersion {
            throw TenancyError(.conflict, "the tenant changed at the same time; try again")
        } catch {
            throw Catalog.map(error)
        }
    }
}
