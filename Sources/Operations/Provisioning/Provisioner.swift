import Database
import Domain
import EventLog
import Foundation
import Logging
import PostgresNIO
import Projectors
import Tenancy

/// Takes a created tenant to serving, in recorded steps.
///
/// Each step checks its record in `tenant_provisioning` and writes it in the same transaction
/// as its effect, so running the provisioner again (after a crash, or on the next start) does
/// each step once and resumes where it stopped.
public struct Provisioner: Sendable {
    public enum Step: String, Sendable, CaseIterable {
        case placement, migrated, admin, samplePet = "sample_pet", defaultConfig = "default_config", welcome
    }

    let catalog: Catalog
    let tenants: TenantCommands
    /// Brings the read models up to date once provisioning is done, so the sample pet and the
    /// default config are there for the tenant's first request.
    let runtime: ProjectionRuntime?
    let logger: Logger
    /// For tests: called before each step; throwing stops provisioning there, as a crash would.
    let beforeStep: @Sendable (Step) throws -> Void

    public init(catalog: Catalog, runtime: ProjectionRuntime? = nil, logger: Logger,
                beforeStep: @escaping @Sendable (Step) throws -> Void = { _ in }) {
        self.catalog = catalog
        self.tenants = TenantCommands(catalog: catalog)
        self.runtime = runtime
        self.logger = logger
        self.beforeStep = beforeStep
    }

    /// Runs the steps not yet done. Returns the first admin's key when this run created it.
    @discardableResult
    public func provision(_ tenant: TenantRecord, adminEmail: String, metadata: EventMetadata) async throws -> APIKey? {
        // A database of its own first: the steps are recorded in it.
        try await tenants.establish(tenant, metadata: metadata)
        let done = try await completedSteps(tenant)
        let handle = catalog.handle(for: tenant)
        var adminKey: APIKey?
        for step in Step.allCases where !done.contains(step) {
            try beforeStep(step)
            switch step {
            case .placement:
                try await handle.withTenant { session in
                    if tenant.placement == .schema { try await session.run("SELECT provision_tenant_schema(\(session.tenant))") }
                    try await Self.record(step, in: session)
                }
            case .migrated:
                // The shared tables are migrated with the control plane. A schema tenant's copies
                // of the projection versions were made with its catalog row, in the same unit of
                // work (provision_tenant_schema), and are in its ledger.
                try await record(step, for: tenant)
            case .admin:
                // The user and key commit before the step record; after a crash in between, the
                // admin exists and only the record is missing.
                let state = try await tenants.state(of: tenant.id)
                if state?.users.values.contains(where: { $0.role == .admin }) != true {
                    let (_, _, key) = try await tenants.addUserWithKey(tenant: tenant.id, email: adminEmail, role: .admin, metadata: metadata)
                    adminKey = key
                }
                try await record(step, for: tenant)
            case .samplePet:
                let runner = PetCommands.runner(store: handle.store)
                let id = UUID(), now = Date()
                try await handle.withTenant { session in
                    _ = try await runner.run(id: id, metadata: metadata, in: session, inline: { _, session in try await Self.record(step, in: session) }) { _ in
                        .register(id: id, name: "Biscuit", species: "dog", breed: "Beagle", microchipID: nil, at: now)
                    }
                }
            case .defaultConfig:
                let runner = ConfigCommands.runner(store: handle.store)
                let now = Date()
                try await handle.withTenant { session in
                    _ = try await runner.run(id: tenant.id.rawValue, metadata: metadata, in: session) { _ in
                        .set(key: "include_deleted_pets", value: .bool(false), at: now)
                    }
                    try await Self.record(step, in: session)
                }
            case .welcome:
                let payload = String(decoding: CanonicalJSON.serialize(.object([
                    JSONValue.Member("subject", .string("Welcome to Petstore")),
                    JSONValue.Member("tenant", .string(tenant.slug)),
                    JSONValue.Member("to", .string(adminEmail)),
                ])), as: UTF8.self)
                try await handle.withTenant { session in
                    try await session.run("""
                        INSERT INTO outbox (tenant_id, kind, payload) VALUES (\(session.tenant), 'welcome', \(payload)::jsonb)
                        ON CONFLICT DO NOTHING
                        """)
                    try await Self.record(step, in: session)
                }
            }
        }
        try await runtime?.catchUp(tenant: tenant.id, using: catalog.store.database)
        try await tenants.execute(.activate(at: Date()), on: tenant.id, metadata: metadata)
        return adminKey
    }

    /// Finishes every tenant left half-provisioned, e.g. by a crash. Run at start-up; a tenant
    /// that still fails stays in `provisioning` (not served) and is logged, and the rest go on.
    public func resumeAll() async throws {
        for tenant in try await catalog.tenants(limit: 10_000) where tenant.status == .provisioning {
            logger.notice("resuming provisioning", metadata: ["tenant": "\(tenant.slug)"])
            do {
                try await provision(tenant, adminEmail: "admin@\(tenant.slug).invalid", metadata: EventMetadata(actor: "system:provisioner"))
            } catch {
                logger.error("provisioning could not be resumed", metadata: ["tenant": "\(tenant.slug)", "error": "\(String(reflecting: error))"])
            }
        }
    }

    func completedSteps(_ tenant: TenantRecord) async throws -> Set<Step> {
        try await catalog.handle(for: tenant).readTenant { session in
            var steps = Set<Step>()
            let rows = try await session.query("SELECT step FROM tenant_provisioning WHERE tenant_id = \(session.tenant)")
            for try await step in rows.decode(String.self) { if let step = Step(rawValue: step) { steps.insert(step) } }
            return steps
        }
    }

    func record(_ step: Step, for tenant: TenantRecord) async throws {
        try await catalog.handle(for: tenant).withTenant { session in try await Self.record(step, in: session) }
    }

    static func record(_ step: Step, in session: TenantSession) async throws {
        try await session.run("""
            INSERT INTO tenant_provisioning (tenant_id, step) VALUES (\(session.tenant), \(step.rawValue)) ON CONFLICT DO NOTHING
            """)
    }
}
