import Database
import Domain
import EventLog
import Foundation
import Logging
import PostgresNIO
import Synchronization

/// The tenant catalog: who the tenants are, where their data lives, their users and keys.
///
/// Every change is decided by the `Tenant` decider from the tenant's own stream, written to the
/// catalog tables and appended to the tenant's log in one transaction, so auditors see each one.
/// Lookups by slug are cached for `cacheTTL`. Every change notifies `changesChannel` in its own
/// transaction, so that each process drops what it cached of that tenant when the change commits
/// (`CatalogInvalidation`); the TTL only bounds what a lost notification could leave behind.
public final class Catalog: Sendable {
    package let client: PostgresClient
    public let store: EventStore
    package let logger: Logger
    let cacheTTL: Duration
    /// Whether tenants may be placed in a database of their own; until then `database`
    /// requests (and the enterprise default) get a schema of their own instead.
    public let databasePlacementAvailable: Bool
    private let cache = Mutex<[String: (record: TenantRecord?, expires: ContinuousClock.Instant)]>([:])
    /// This process's key checks: told at once when a tenant's mirror changes here (other
    /// processes hear of it by NOTIFY).
    let authenticator: Authenticator?

    /// How long an offboarding tenant is kept (suspended) before it is purged.
    public let offboardingRetention: Duration

    public init(client: PostgresClient, store: EventStore, cacheTTL: Duration = .seconds(2),
                databasePlacementAvailable: Bool = false, authenticator: Authenticator? = nil,
                offboardingRetention: Duration = .seconds(30 * 86_400), logger: Logger) {
        self.offboardingRetention = offboardingRetention
        self.client = client
        self.store = store
        self.cacheTTL = cacheTTL
        self.databasePlacementAvailable = databasePlacementAvailable
        self.authenticator = authenticator
        self.logger = logger
    }

    public static let tenantStreamType = "tenant"

    /// Where catalog changes are announced: a tenant's id, `platform` (platform keys) or `*`.
    public static let changesChannel = "petstore_catalog"

    // MARK: - Lookups

    /// The tenant with this slug, or nil.
    public func tenant(slug: String) async throws(TenancyError) -> TenantRecord? {
        let now = ContinuousClock.now
        if let cached = cache.withLock({ $0[slug] }), cached.expires > now { return cached.record }
        let record = try await fetch("SELECT \(unescaped: Self.columns) FROM tenants WHERE slug = \(slug)").first
        cache.withLock { cache in
            if cache.count > 100_000 { cache.removeAll(keepingCapacity: true) }
            cache[slug] = (record, now + cacheTTL)
        }
        return record
    }

    public func tenant(id: TenantID) async throws(TenancyError) -> TenantRecord? {
        try await fetch("SELECT \(unescaped: Self.columns) FROM tenants WHERE id = \(id)").first
    }

    /// Tenants in slug order, after `slug` when paging.
    public func tenants(after slug: String? = nil, limit: Int = 100) async throws(TenancyError) -> [TenantRecord] {
        try await fetch("SELECT \(unescaped: Self.columns) FROM tenants WHERE slug > \(slug ?? "") ORDER BY slug LIMIT \(limit)")
    }

    public func invalidate(slug: String) {
        _ = cache.withLock { $0.removeValue(forKey: slug) }
    }

    /// Forgets what is cached of one tenant (every tenant when nil), and every slug found to be
    /// unknown: the change may have been that tenant's creation.
    public func forget(tenant: TenantID?) {
        cache.withLock { cache in
            guard let tenant else { return cache.removeAll() }
            cache = cache.filter { $0.value.record != nil && $0.value.record?.id != tenant }
        }
    }

    /// Forgets a purged tenant in this process at once: its record, its slug and its keys (other
    /// processes hear of it from the purge's catalog notification).
    public func forget(purged tenant: TenantID, slug: String) {
        forget(tenant: tenant)
        invalidate(slug: slug)
        authenticator?.forget(tenant: tenant)
        store.database.forgetHome(of: tenant)
    }

    /// Announces a change of the session's tenant to every process, when the session commits.
    package static func announce(in session: TenantSession) async throws {
        try await session.run("SELECT pg_notify(\(changesChannel), \(session.tenant.description))")
    }

    /// Where to reach a tenant's data.
    public func handle(for tenant: TenantRecord) -> TenantHandle {
        TenantHandle(tenant: tenant, store: store)
    }

    // MARK: - Changes

    /// Whether a tenant may be created with this placement here, and the placement it gets:
    /// `database` falls back to `schema` when only the plan's default asked for it.
    public func placement(for plan: Plan, requested: Placement?) throws(TenancyError) -> Placement {
        let chosen = requested ?? plan.defaultPlacement
        guard chosen == .database && !databasePlacementAvailable else { return chosen }
        guard requested == nil else {
            throw TenancyError(.invalid, "placement 'database' is not available in this deployment",
                               fieldErrors: [.init(field: "placement", message: "must be shared or schema here")])
        }
        return .schema
    }

    /// The tenant owning a key prefix, for revocation by prefix from the CLI.
    public func keyOwner(prefix: String) async throws(TenancyError) -> (tenant: TenantID, keyID: UUID)? {
        do {
            let rows = try await client.query("SELECT tenant_id, id FROM find_api_key(\(prefix))", logger: logger)
            return try await rows.decode((UUID, UUID).self).first(where: { _ in true }).map { (TenantID($0.0), $0.1) }
        } catch {
            throw TenancyError.storage("keys could not be read", cause: error)
        }
    }

    /// Creates a platform admin key; there is no tenant log for it, the platform table is its record.
    public func createPlatformKey(name: String) async throws(TenancyError) -> APIKey {
        let key = APIKey.generate(.platform)
        do {
            try await client.query("""
                INSERT INTO platform_keys (id, prefix, key_hash, name) VALUES (\(UUID()), \(key.prefix), \(ByteBuffer(bytes: key.hash)), \(name))
                """, logger: logger).consume()
        } catch {
            throw TenancyError.storage("the platform key could not be stored", cause: error)
        }
        return key
    }

    public func revokePlatformKey(prefix: String) async throws(TenancyError) -> Bool {
        do {
            let rows = try await client.query("""
                WITH revoked AS (UPDATE platform_keys SET revoked_at = now() WHERE prefix = \(prefix) AND revoked_at IS NULL RETURNING id)
                SELECT id, pg_notify(\(Self.changesChannel), 'platform') FROM revoked
                """, logger: logger)
            return try await rows.decode((UUID, String).self).first(where: { _ in true }) != nil
        } catch {
            throw TenancyError.storage("the platform key could not be revoked", cause: error)
        }
    }

    // MARK: - Catalog rows from tenant events

    /// Writes the catalog rows of a tenant from its events, for a log imported from an export.
    /// Exports hold no key hashes, so the tenant's keys come back revoked: new ones are issued.
    public func restore(events: [TenantEvent], in session: TenantSession) async throws {
        for event in events { try await apply(event, keyHashes: [:], restoring: true, in: session) }
        try await Self.announce(in: session)
        // A log exported before activation was an event ends provisioning here.
        try await session.run("UPDATE tenants SET status = 'active' WHERE id = \(session.tenant) AND status = 'provisioning'")
    }

    /// Writes what tenant events change in the catalog tables, in the unit of work that appends
    /// them: the inline work of every tenant command. `keyHashes` holds the hash of each key
    /// issued by these events (the log keeps only the prefix).
    public func apply(_ events: [TenantEvent], keyHashes: [UUID: [UInt8]] = [:], in session: TenantSession) async throws {
        for event in events { try await apply(event, keyHashes: keyHashes, in: session) }
        guard !events.isEmpty else { return }
        try await Self.announce(in: session)
        if session.home.placement == .database { try await mirrorAfterCommit(events, in: session) }
    }

    // MARK: - Tenants in a database of their own

    /// A tenant placed in a database of its own keeps its catalog rows there, written with its
    /// log in one transaction like any tenant's: that copy is the record. The main database
    /// keeps a mirror of them, which resolution and key checks read: written once the tenant's
    /// transaction has committed (a change is in force when its mirror is), and re-derived from
    /// the record at start-up (`mirrorAll`). A change that takes a right away (a key revoked, the
    /// tenant suspended or leaving) is written to the mirror before the record commits too, so
    /// a crash in between never leaves a revoked key working; should the record then not
    /// commit, the mirror is set back to the record when the transaction rolls back (and errs
    /// on the side of refusing, should that fail, until the next change or start-up).
    private func mirrorAfterCommit(_ events: [TenantEvent], in session: TenantSession) async throws {
        let tenant = session.tenant
        let restricting = events.contains { event in
            switch event {
            case .apiKeyRevoked, .suspended, .offboardingRequested: true
            default: false
            }
        }
        if restricting {
            // Should the record not commit, the mirror is set back to it at once.
            session.afterRollback { [self] in await restoreMirror(of: tenant) }
            try await store.database.onControlPlane.withTenant(tenant) { mirror in
                for event in events {
                    switch event {
                    case .apiKeyRevoked, .suspended, .offboardingRequested: try await apply(event, keyHashes: [:], in: mirror)
                    default: break
                    }
                }
                try await Self.announce(in: mirror)
            }
            authenticator?.forget(tenant: tenant)
        }
        session.afterCommit { [self] in
            do {
                try await mirror(tenant)
            } catch {
                logger.error("a tenant's catalog rows could not be mirrored to the main database; they will be at start-up",
                             metadata: ["tenant": "\(tenant)", "error": "\(DatabaseURL.describe(error))"])
            }
        }
    }

    /// Copies a tenant's catalog rows from its own database to the main database's mirror.
    public func mirror(_ tenant: TenantID) async throws {
        let rows = try await store.database.readTenant(tenant) { session in try await CatalogRows.read(in: session) }
        guard let rows else { return }
        try await store.database.onControlPlane.withTenant(tenant) { session in
            try await rows.write(in: session)
            try await Self.announce(in: session)
        }
        forget(tenant: tenant)
        // A key refused while a revocation that then did not commit was in the mirror is not
        // remembered as refused.
        authenticator?.forget(tenant: tenant)
    }

    /// After a change of a tenant in a database of its own did not commit: what it wrote to
    /// the mirror ahead of its commit (a revocation) is set back to the record. Tried twice;
    /// should both fail, the mirror keeps refusing until the tenant's next change or start-up.
    func restoreMirror(of tenant: TenantID) async {
        for attempt in 1...2 {
            do {
                try await mirror(tenant)
                return
            } catch {
                logger.error("a tenant's catalog rows could not be set back to its record", metadata: [
                    "tenant": "\(tenant)", "attempt": "\(attempt)", "error": "\(DatabaseURL.describe(error))",
                ])
                if attempt < 2 { try? await Task.sleep(for: .milliseconds(200)) }
            }
        }
    }

    /// Mirrors every tenant placed in a database of its own (at start-up); one that cannot be
    /// reached is logged and the others go on.
    public func mirrorAll() async {
        let placed: [TenantID]
        do {
            placed = try await client.query("SELECT id FROM tenants WHERE placement = 'database'", logger: logger)
                .decode(UUID.self).all().map(TenantID.init)
        } catch {
            logger.error("tenants in databases of their own could not be listed", metadata: ["error": "\(DatabaseURL.describe(error))"])
            return
        }
        for tenant in placed {
            do {
                try await mirror(tenant)
            } catch {
                logger.error("a tenant's catalog rows could not be mirrored", metadata: ["tenant": "\(tenant)", "error": "\(DatabaseURL.describe(error))"])
            }
        }
    }

    private func apply(
        _ event: TenantEvent, keyHashes: [UUID: [UInt8]], restoring: Bool = false, in session: TenantSession
    ) async throws {
        let tenant = session.tenant
        switch event {
        case .created(let created):
            // A tenant of a database of its own restored anywhere else (a replay of its export)
            // gets a schema of its own there.
            let placement = created.placement == .database && session.home.placement != .database ? .schema : created.placement
            let location = placement == .shared ? nil : "t_" + tenant.description.replacingOccurrences(of: "-", with: "")
            try await session.run("""
                INSERT INTO tenants (id, slug, name, plan, status, placement, location, created_at, updated_at)
                VALUES (\(tenant), \(created.slug), \(created.name), \(created.plan.rawValue), 'provisioning',
                        \(placement.rawValue), \(location), \(created.at), \(created.at))
                """)
            if session.home.placement == .database {
                // Alone in its database: a partition of its own, and the tables as they are.
                try await session.run("SELECT create_tenant_partition(\(tenant))")
            } else if placement != .shared {
                // Before the tenant's first event: its partition must exist before any row would
                // land in the shared ones. The catalog row comes first: provisioning reads it.
                try await session.run("SELECT provision_tenant_schema(\(tenant))")
            }
        case .activated(let activated):
            try await session.run(
                "UPDATE tenants SET status = 'active', updated_at = \(activated.at) WHERE id = \(tenant) AND status = 'provisioning'")
        case .planChanged(let changed):
            try await session.run(
                "UPDATE tenants SET plan = \(changed.to.rawValue), updated_at = \(changed.at) WHERE id = \(tenant)")
        case .suspended(let suspended):
            try await session.run(
                "UPDATE tenants SET status = 'suspended', updated_at = \(suspended.at) WHERE id = \(tenant)")
        case .reactivated(let reactivated):
            try await session.run("""
                UPDATE tenants SET status = 'active', removal_scheduled_at = NULL, updated_at = \(reactivated.at) WHERE id = \(tenant)
                """)
        case .userAdded(let added):
            try await session.run("""
                INSERT INTO users (tenant_id, id, email, role, created_at)
                VALUES (\(tenant), \(added.userID), \(added.email == TenantUser.erased ? nil : added.email), \(added.role.rawValue), \(added.at))
                """)
        case .userErased(let erased):
            try await session.run("UPDATE users SET email = NULL WHERE tenant_id = \(tenant) AND id = \(erased.userID)")
        case .apiKeyIssued(let issued) where restoring:
            // No hash travels with an export: a random one no key matches, and the key revoked.
            try await session.run("""
                INSERT INTO api_keys (tenant_id, id, prefix, key_hash, user_id, role, created_at, revoked_at)
                VALUES (\(tenant), \(issued.keyID), \(issued.prefix), \(ByteBuffer(bytes: APIKey.generate(.tenant).hash)), \(issued.userID),
                        \(issued.role.rawValue), \(issued.at), now())
                """)
        case .apiKeyIssued(let issued):
            guard let hash = keyHashes[issued.keyID] else { throw TenancyError(.storage, "a key was issued without its hash") }
            try await session.run("""
                INSERT INTO api_keys (tenant_id, id, prefix, key_hash, user_id, role, created_at)
                VALUES (\(tenant), \(issued.keyID), \(issued.prefix), \(ByteBuffer(bytes: hash)), \(issued.userID),
                        \(issued.role.rawValue), \(issued.at))
                """)
        case .apiKeyRevoked(let revoked):
            try await session.run(
                "UPDATE api_keys SET revoked_at = \(revoked.at) WHERE tenant_id = \(tenant) AND id = \(revoked.keyID)")
        case .offboardingRequested(let requested):
            let removal = requested.at.addingTimeInterval(TimeInterval(offboardingRetention.components.seconds))
            try await session.run("""
                UPDATE tenants SET status = 'offboarding', removal_scheduled_at = \(removal), updated_at = \(requested.at)
                 WHERE id = \(tenant)
                """)
        }
    }

    /// A catalog write's failure as the tenancy error it stands for (a taken slug, a known email).
    public static func map(_ error: any Error) -> TenancyError {
        if let error = error as? TenancyError { return error }
        if let error = error as? PostgresTransactionError, let inner = error.closureError { return map(inner) }
        if let error = error as? EventLogError {
            return error.code == .wrongExpectedVersion
                ? TenancyError(.conflict, "the tenant changed at the same time; try again")
                : TenancyError.storage("the tenant could not be changed", cause: error)
        }
        if let error = error as? PSQLError, error.serverInfo?[.sqlState] == "23505" {
            let constraint = error.serverInfo?[.constraintName] ?? ""
            if constraint.contains("slug") { return TenancyError(.slugTaken, "that slug is taken") }
            if constraint.contains("email") { return TenancyError(.conflict, "a user with that email exists") }
            return TenancyError(.conflict, "that already exists")
        }
        return TenancyError.storage("the catalog could not be changed", cause: error)
    }

    static let columns = "id, slug, name, plan, status, placement, location, server, created_at, updated_at, removal_scheduled_at"

    private func fetch(_ query: PostgresQuery) async throws(TenancyError) -> [TenantRecord] {
        do {
            var records: [TenantRecord] = []
            let rows = try await client.query(query, logger: logger)
            for try await (id, slug, name, plan, status, placement, location, server, created, updated, removal)
                in rows.decode((UUID, String, String, String, String, String, String?, String, Date, Date, Date?).self) {
                records.append(TenantRecord(
                    id: TenantID(id), slug: slug, name: name, plan: Plan(rawValue: plan) ?? .free,
                    status: TenantStatus(rawValue: status) ?? .suspended, placement: Placement(rawValue: placement) ?? .shared,
                    location: location, server: server, createdAt: created, updatedAt: updated, removalScheduledAt: removal
                ))
            }
            return records
        } catch {
            throw TenancyError.storage("the catalog could not be read", cause: error)
        }
    }
}

extension TenancyError {
    /// A decider's refusal in the catalog's terms.
    public init(_ error: DomainError) {
        let code: Code = switch error.code {
        case .validation: .invalid
        case .notFound: .notFound
        case .alreadyExists: .conflict
        case .removed: .conflict
        case .conflict: .conflict
        case .lastAdminKey: .lastAdminKey
        }
        self.init(code, error.message, fieldErrors: error.fieldErrors.map { FieldError(field: $0.field, message: $0.message) })
    }
}
