import Database
import EventLog
import Foundation
import Logging
import PostgresNIO

extension ProjectionRuntime {
    /// Where one projection version stands over all tenants.
    public struct Status: Sendable, Equatable {
        public let name: String
        public let version: String
        public let state: String
        public let tenants: Int
        public let tenantsBehind: Int
        /// Events applied, summed over tenants.
        public let applied: Int64
        /// Events not yet applied, summed over tenants.
        public let lag: Int64
    }

    public func status() async throws -> [Status] {
        var result: [Status] = []
        let rows = try await client.query(
            "SELECT name, version, state FROM projections ORDER BY name, created_at", logger: logger)
        var versions: [(String, String, String)] = []
        for try await row in rows.decode((String, String, String).self) { versions.append(row) }
        for (name, version, state) in versions {
            let positions = try await client.query("""
                SELECT count(*), count(*) FILTER (WHERE applied_seq < head), coalesce(sum(applied_seq), 0)::bigint,
                       coalesce(sum(head - applied_seq), 0)::bigint
                  FROM projection_positions(\(name), \(version))
                """, logger: logger)
            for try await (tenants, behind, applied, lag) in positions.decode((Int, Int, Int64, Int64).self) {
                result.append(Status(name: name, version: version, state: state, tenants: tenants, tenantsBehind: behind, applied: applied, lag: lag))
            }
        }
        return result
    }

    /// Rebuilds the active (and any building) version of a projection from the log, for one
    /// tenant or all. Per tenant it is one transaction: the tenant's rows are deleted and every
    /// event applied again before anyone sees the result, so readers never see it half-done.
    /// `progress` gets (tenants done, tenants in all) after each tenant.
    public func rebuild(_ name: String, tenant only: TenantID? = nil, progress: @Sendable (Int, Int) -> Void = { _, _ in }) async throws {
        guard let projector = projectors[name] else {
            throw DatabaseError(.invalidMigration, "no projection named '\(name)'; known: \(projectors.keys.sorted().joined(separator: ", "))")
        }
        let targets = try await versions().filter { $0.name == name }
        for version in targets {
            let tenants: [TenantID]
            if let only {
                tenants = [only]
            } else {
                var all: [TenantID] = []
                let rows = try await client.query("SELECT tenant_id FROM projection_positions(\(version.name), \(version.version))", logger: logger)
                for try await tenant in rows.decode(UUID.self) { all.append(TenantID(tenant)) }
                let placed = try await client.query("SELECT tenant_id FROM database_tenants()", logger: logger)
                for try await tenant in placed.decode(UUID.self) { all.append(TenantID(tenant)) }
                tenants = all
            }
            let tables = try await client.query(
                "SELECT tables FROM projections WHERE name = \(version.name) AND version = \(version.version)", logger: logger
            ).decode([String].self).first(where: { _ in true }) ?? []
            for (index, tenant) in tenants.enumerated() {
                try await rebuild(tenant: tenant, version: version, tables: tables, projector: projector)
                progress(index + 1, tenants.count)
            }
        }
    }

    private func rebuild(tenant: TenantID, version: Version, tables: [String], projector: any Projector) async throws {
        let lockKey = "\(version.name)/\(version.version)/\(tenant)"
        // As in a batch: a platform projection's rows are in the main database for every tenant.
        let platform = version.scope == "platform"
        try await (platform ? database.onControlPlane : database).withTenant(tenant) { session in
            let ownDatabase = platform && session.home.placement == .database
            try await session.run("SELECT pg_advisory_xact_lock(hashtextextended(\(lockKey), 0))")
            let schema = version.schema(in: session)
            try await session.run("SELECT set_config('search_path', \(schema + ", public"), true)")
            for table in tables {
                // Schema and table names come from the projections table, written from our own SQL files.
                try await session.run(
                    PostgresQuery(unsafeSQL: "DELETE FROM \(schema).\(table) WHERE tenant_id = $1", binds: try bindings(session.tenant)))
            }
            var position: Int64 = 0
            while true {
                let events = ownDatabase
                    ? try await database.readTenant(tenant, in: session.home) { home in try await store.read(after: position, limit: batchSize, in: home) }
                    : try await store.read(after: position, limit: batchSize, in: session)
                guard let last = events.last else { break }
                try await projector.applyRelevant(events, in: session)
                position = last.seq
                if events.count < batchSize { break }
            }
            try await session.run("""
                INSERT INTO projection_checkpoints (tenant_id, projection, version, applied_seq) VALUES (\(session.tenant), \(version.name), \(version.version), \(position))
                ON CONFLICT (tenant_id, projection, version) DO UPDATE SET applied_seq = EXCLUDED.applied_seq, updated_at = now()
                """)
        }
    }

    private func bindings(_ value: TenantID) throws -> PostgresBindings {
        var bindings = PostgresBindings()
        bindings.append(value)
        return bindings
    }
}
