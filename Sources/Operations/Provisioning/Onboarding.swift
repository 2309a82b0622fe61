import Database
import Domain
import EventLog
import Foundation
import Logging
import PostgresNIO
import Tenancy

/// Onboarding as the platform API and the CLI offer it: create the tenant, provision it, hand
/// out its first admin key.
///
/// Run again for a slug whose onboarding stopped half-way (the tenant is still `provisioning`,
/// asked for with the same plan and placement), it resumes rather than refusing the slug: the
/// steps not yet done run, and since the first run's admin key never reached anyone, the admin
/// gets a new one (the undelivered one is revoked).
public struct Onboarding: Sendable {
    public struct Outcome: Sendable {
        public let tenant: TenantRecord
        /// The first admin's key, shown once; nil only when a concurrent run is handing it out.
        public let adminKey: APIKey?
        /// Whether an earlier, unfinished onboarding of this slug was resumed.
        public let resumed: Bool
    }

    let catalog: Catalog
    let tenants: TenantCommands
    let provisioner: Provisioner
    /// Where the per-slug lock is held: a connection of its own (the owner's login), not one of
    /// the pools', which the run itself needs. Nil holds it on a connection of the catalog's pool.
    let lockURL: DatabaseURL?

    public init(catalog: Catalog, provisioner: Provisioner, lockURL: DatabaseURL? = nil) {
        self.catalog = catalog
        self.tenants = TenantCommands(catalog: catalog)
        self.provisioner = provisioner
        self.lockURL = lockURL
    }

    public func run(slug: String, name: String, plan: Plan, placement: Placement?, server: String? = nil, adminEmail: String, metadata: EventMetadata) async throws -> Outcome {
        try await oneAtATime(slug) {
            try await runAlone(slug: slug, name: name, plan: plan, placement: placement, server: server, adminEmail: adminEmail, metadata: metadata)
        }
    }

    /// How long a second onboarding of a slug waits for the first to end.
    static let lockWait = "30s"

    /// One onboarding of a slug at a time, across processes. Without it, a request for a slug
    /// whose first run is still provisioning would resume it beside that run, hand out another
    /// admin key and revoke the one the first run is about to return. A session lock: a process
    /// that dies mid-run releases it with its connection, and the next run resumes.
    func oneAtATime<T: Sendable>(_ slug: String, _ body: @Sendable () async throws -> T) async throws -> T {
        let key = "onboarding:\(slug)"
        let logger = provisioner.logger
        @Sendable func locked(_ connection: PostgresConnection) async throws -> T {
            try await connection.query("SELECT set_config('lock_timeout', \(Self.lockWait), false)", logger: logger).consume()
            do {
                try await connection.query("SELECT pg_advisory_lock(hashtextextended(\(key), 0))", logger: logger).consume()
            } catch let error as PSQLError where error.serverInfo?[.sqlState] == "55P03" {
                try? await connection.query("RESET lock_timeout", logger: logger).consume()
                throw TenancyError(.unavailable, "Another onboarding of this slug is still running; retry shortly.")
            }
            func unlock() async {
                try? await connection.query("SELECT pg_advisory_unlock(hashtextextended(\(key), 0))", logger: logger).consume()
                try? await connection.query("RESET lock_timeout", logger: logger).consume()
            }
            do {
                let result = try await body()
                await unlock()
                return result
            } catch {
                await unlock()
                throw error
            }
        }
        if let lockURL { return try await lockURL.withConnection(logger: logger) { try await locked($0) } }
        return try await catalog.client.withConnection { try await locked($0) }
    }

    func runAlone(slug: String, name: String, plan: Plan, placement: Placement?, server: String?, adminEmail: String, metadata: EventMetadata) async throws -> Outcome {
        do {
            let record = try await tenants.create(slug: slug, name: name, plan: plan, placement: placement, server: server, metadata: metadata)
            let key = try await provisioner.provision(record, adminEmail: adminEmail, metadata: metadata)
            return Outcome(tenant: try await catalog.tenant(id: record.id) ?? record, adminKey: key, resumed: false)
        } catch let error as TenancyError where error.code == .slugTaken {
            catalog.invalidate(slug: slug)
            guard let existing = try await catalog.tenant(slug: slug), existing.status == .provisioning, existing.plan == plan,
                  existing.placement == (try catalog.placement(for: plan, requested: placement)),
                  server == nil || existing.server == server
            else { throw error }
            var key = try await provisioner.provision(existing, adminEmail: adminEmail, metadata: metadata)
            if key == nil { key = try await reissueAdminKey(existing.id, metadata: metadata) }
            return Outcome(tenant: try await catalog.tenant(id: existing.id) ?? existing, adminKey: key, resumed: true)
        }
    }

    /// A new key for the first admin, whose key from the stopped run was never shown to anyone.
    func reissueAdminKey(_ tenant: TenantID, metadata: EventMetadata) async throws -> APIKey? {
        guard let state = try await tenants.state(of: tenant),
              let admin = state.users.values.filter({ $0.role == .admin }).min(by: { $0.email < $1.email }) else { return nil }
        let (_, key) = try await tenants.issueKey(tenant: tenant, userID: admin.id, role: .admin, metadata: metadata)
        for old in state.apiKeys.values where old.userID == admin.id && !old.revoked {
            try await tenants.execute(.revokeApiKey(id: old.id, at: Date()), on: tenant, metadata: metadata)
        }
        return key
    }
}
