import Database
import EventLog
import Foundation
import Logging
import PostgresNIO
import Projectors
import Synchronization
import Tenancy

/// Brings every tenant's own data to this build: `petstore migrate`'s pass over the tenants,
/// after the control plane (`Migrator`) and the shared projection versions (`ProjectionInstaller`).
///
/// What a tenant needs is compared with its ledger (`tenant_migrations`) in one query, so a run
/// with nothing to do costs one round trip however many tenants there are. A tenant's work is:
/// make the missing copies of per-tenant projection versions, fill them from its log, then
/// point its views and record the versions in its ledger in one transaction. Each step is
/// idempotent (a copy that exists is kept, filling resumes from its checkpoint, the ledger rows
/// are written once), so a run killed anywhere is finished by the next one.
public struct TenantMigrator: Sendable {
    /// One tenant's work.
    public struct Plan: Sendable, Equatable {
        public let tenant: TenantID
        public let slug: String
        public let placement: String
        /// The projection versions it has no copy of, as `name version (state)`.
        public let missing: [Missing]

        public struct Missing: Sendable, Equatable, CustomStringConvertible {
            public let name: String
            public let version: String
            public let state: String
            public var description: String { "\(name) \(version) (\(state))" }

            public init(name: String, version: String, state: String) {
                self.name = name
                self.version = version
                self.state = state
            }
        }
    }

    /// How one tenant's migration went.
    public struct Outcome: Sendable {
        public let plan: Plan
        /// Nil when it succeeded.
        public let error: (any Error)?
        public var succeeded: Bool { error == nil }
    }

    /// The pool of the application role: every change is made in the tenant's own session.
    let client: PostgresClient
    let database: TenantDatabase
    let runtime: ProjectionRuntime
    let logger: Logger

    /// Tenants in databases of their own are reached with `owner`'s login to their servers;
    /// without it they are reported as failed.
    public init(client: PostgresClient, owner: DatabaseURL? = nil, logger: Logger) {
        self.client = client
        let pools = owner.map { HomePools(logger: logger, directory: ServerRegistry.directory(owner: $0, logger: logger)) }
        self.pools = pools
        self.database = TenantDatabase(client: client, logger: logger, refusesBehind: false, pools: pools)
        self.runtime = ProjectionRuntime(client: client, store: EventStore(client: client, pools: pools, logger: logger), projectors: ReadModels.all,
                                         maintenance: true, logger: logger)
        self.logger = logger
    }

    let pools: HomePools?

    /// Every tenant (or the one with slug `only`) and what it lacks, in slug order; tenants that
    /// lack nothing have an empty `missing`. `including` adds versions this build will install
    /// but has not yet (for `--dry-run`, where the control plane is not migrated).
    public func plans(only slug: String? = nil, including upcoming: [ProjectionDefinition] = []) async throws -> [Plan] {
        let fingerprint = try HomeDatabases.fingerprint
        let upcomingNames = upcoming.filter { $0.scope == "tenant" }.map(\.name)
        let upcomingVersions = upcoming.filter { $0.scope == "tenant" }.map(\.version)
        let rows = try await client.query("""
            WITH wanted AS (
              SELECT p.name, p.version, p.state FROM projections p
               WHERE p.scope = 'tenant' AND p.state IN ('active', 'building')
              UNION
              SELECT u.name, u.version, 'to be installed' FROM unnest(\(upcomingNames)::text[], \(upcomingVersions)::text[]) AS u(name, version)
               WHERE NOT EXISTS (SELECT 1 FROM projections p WHERE p.name = u.name AND p.version = u.version)
            ), ledger AS MATERIALIZED (
              SELECT tenant_id, item FROM tenant_ledger()
            ), missing AS (
              SELECT t.id, w.name, w.version, w.state FROM tenants t CROSS JOIN wanted w
               WHERE t.placement = 'schema'
                 AND NOT EXISTS (SELECT 1 FROM ledger m WHERE m.tenant_id = t.id AND m.item = 'projection:' || w.name || ':' || w.version)
              UNION ALL
              -- A database of its own is brought to this build's migrations and projections at once.
              SELECT t.id, 'database', \(String(fingerprint.prefix(12))), 'migrations and projections' FROM tenants t
               WHERE t.placement = 'database' AND t.status <> 'provisioning'
                 AND NOT EXISTS (SELECT 1 FROM ledger m WHERE m.tenant_id = t.id AND m.item = 'database:' || \(fingerprint))
            )
            SELECT t.id, t.slug, t.placement,
                   coalesce(array_agg(m.name ORDER BY m.name, m.version) FILTER (WHERE m.name IS NOT NULL), '{}'),
                   coalesce(array_agg(m.version ORDER BY m.name, m.version) FILTER (WHERE m.name IS NOT NULL), '{}'),
                   coalesce(array_agg(m.state ORDER BY m.name, m.version) FILTER (WHERE m.name IS NOT NULL), '{}')
              FROM tenants t LEFT JOIN missing m ON m.id = t.id
             WHERE \(slug == nil) OR t.slug = \(slug ?? "")
             GROUP BY t.id, t.slug, t.placement
             ORDER BY t.slug
            """, logger: logger)
        var plans: [Plan] = []
        for try await (id, slug, placement, names, versions, states) in rows.decode((UUID, String, String, [String], [String], [String]).self) {
            let missing = zip(names, zip(versions, states)).map { Plan.Missing(name: $0.0, version: $0.1.0, state: $0.1.1) }
            plans.append(Plan(tenant: TenantID(id), slug: slug, placement: placement, missing: missing))
        }
        return plans
    }

    /// The first step of a tenant's migration on its own: the missing copies, made empty (what
    /// a run stopped after that step leaves behind).
    public func makeCopies(_ plan: Plan) async throws {
        try await database.withTenant(plan.tenant) { session in
            for version in plan.missing where version.state != "to be installed" {
                try await session.run("SELECT install_tenant_projection(\(session.tenant), \(version.name), \(version.version))")
            }
        }
    }

    /// Runs the plans with at most `jobs` tenants at a time. A failing tenant is reported in its
    /// outcome and the others go on; `progress` hears of each tenant as it ends.
    public func run(_ plans: [Plan], jobs: Int, progress: @escaping @Sendable (Outcome) -> Void = { _ in }) async -> [Outcome] {
        let work = plans.filter { !$0.missing.isEmpty }
        let outcomes = await withTaskGroup(of: Outcome.self) { group in
            var outcomes: [Outcome] = []
            var next = work.makeIterator()
            func start(_ plan: Plan) {
                group.addTask {
                    do {
                        try await migrate(plan)
                        return Outcome(plan: plan, error: nil)
                    } catch {
                        logger.error("tenant migration failed", metadata: ["tenant": "\(plan.slug)", "error": "\(String(reflecting: error))"])
                        return Outcome(plan: plan, error: error)
                    }
                }
            }
            for _ in 0 ..< max(1, jobs) { if let plan = next.next() { start(plan) } }
            while let outcome = await group.next() {
                outcomes.append(outcome)
                progress(outcome)
                if let plan = next.next() { start(plan) }
            }
            return outcomes
        }
        // Not before: other jobs use the pools to databases of their own until the last one ends.
        await pools?.closeAll()
        return outcomes
    }

    /// Fills the projection versions still being built for every tenant and switches to them
    /// (`ProjectionRuntime.finishBuilding`): the end of `petstore migrate`, so that servers of
    /// this build, started after it, find their read models served.
    public func finishBuilding(progress: @escaping @Sendable ([ProjectionRuntime.Version]) -> Void = { _ in }) async throws {
        do {
            try await runtime.finishBuilding(progress: progress)
        } catch {
            await pools?.closeAll()
            throw error
        }
        await pools?.closeAll()
    }

    /// One tenant: copies, then filling, then views and ledger.
    func migrate(_ plan: Plan) async throws {
        if plan.placement == "database" { return try await migrateOwnDatabase(plan) }
        let missing = plan.missing.filter { $0.state != "to be installed" }
        guard !missing.isEmpty else { return }
        try await makeCopies(plan)
        // The copies are new or half-filled: bring them to the head of the log, resuming from
        // their checkpoints, before anyone reads them through the views.
        try await runtime.catchUp(tenant: plan.tenant, projections: Set(missing.map(\.name)), using: database)
        try await database.withTenant(plan.tenant) { session in
            for version in missing {
                try await session.run("SELECT finish_tenant_projection(\(session.tenant), \(version.name), \(version.version))")
            }
        }
    }

    /// A tenant in a database of its own: the database gets this build's migrations and
    /// projection versions, its new versions are filled from its log and the ones the main
    /// database serves are swapped in, then the ledger records the build.
    func migrateOwnDatabase(_ plan: Plan) async throws {
        guard let pools else { throw DatabaseError(.unreachable, "no owner's login to reach the tenant's database with") }
        database.forgetHome(of: plan.tenant)
        let home = try await database.home(of: plan.tenant)
        guard let name = home.location else { throw DatabaseError(.unreachable, "the tenant's database is not named in the catalog") }
        try await HomeDatabases.ensure(name, on: try await pools.url(of: home.server), logger: logger)
        try await runtime.catchUp(tenant: plan.tenant, using: database)
        let active = try await runtime.versions().filter { $0.state == "active" && $0.scope == "tenant" }
        try await database.withTenant(plan.tenant) { session in
            for version in active { try await session.run("SELECT activate_projection(\(version.name), \(version.version))") }
        }
        try await database.onControlPlane.withTenant(plan.tenant) { session in
            try await session.run("SELECT record_tenant_database(\(session.tenant), \(try HomeDatabases.fingerprint))")
        }
    }
}
