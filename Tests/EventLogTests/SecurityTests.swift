import Database
import Foundation
import PetstoreTesting
import PostgresNIO
import Testing
@testable import EventLog

@Suite struct SecurityTests {
    let logger = TestCluster.logger

    @Test func `the application role sees no rows when no tenant is set`() async throws {
        try await withStore { store, database in
            let tenant = TenantID()
            try await store.append(tenant: tenant, stream: try pet(), expected: .any, events: [try named("Rex")])
            let counts = try await rows(database.appURL, "SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM event_heads)", as: (Int64, Int64).self)
            #expect(counts.first?.0 == 0 && counts.first?.1 == 0)
            let superuserCount = try await scalar(database.superuserURL, "SELECT count(*) FROM events", as: Int64.self)
            #expect(superuserCount == 1, "the row is there; only RLS hides it")
        }
    }

    @Test func `a tenant's transaction sees only its own events`() async throws {
        try await withStore { store, _ in
            let a = TenantID(), b = TenantID()
            try await store.append(tenant: a, stream: try pet(), expected: .any, events: [try named("A")])
            try await store.append(tenant: b, stream: try pet(), expected: .any, events: [try named("B1"), try named("B2")])
            let seen = try await store.database.withTenant(a) { session in
                var counts: [Int64] = []
                for try await count in try await session.query("SELECT count(*) FROM events").decode(Int64.self) {
                    counts.append(count)
                }
                return counts
            }
            #expect(seen == [1])
        }
    }

    @Test func `inserting a row for another tenant is refused with SQLSTATE 42501`() async throws {
        try await withStore { store, _ in
            let mine = TenantID(), theirs = TenantID()
            await #expect {
                try await store.database.withTenant(mine) { session in
                    try await session.run("""
                        INSERT INTO events (tenant_id, seq, stream_type, stream_id, stream_version, event_type, schema_version,
                                            data, metadata, recorded_at, prev_hash, hash)
                        VALUES (\(theirs.rawValue), 1, 'pet', \(UUID()), 1, 'X', 1, '{}', '{}', now(), '\\x00', '\\x00')
                        """)
                }
            } throws: { error in
                (error as? PSQLError)?.serverInfo?[.sqlState] == "42501"
            }
        }
    }

    @Test func `the log is append-only for the application role`() async throws {
        try await withStore { store, _ in
            let tenant = TenantID()
            try await store.append(tenant: tenant, stream: try pet(), expected: .any, events: [try named("Rex")])
            for statement: PostgresQuery in ["UPDATE events SET event_type = 'X'", "DELETE FROM events", "TRUNCATE events"] {
                await #expect {
                    try await store.database.withTenant(tenant) { session in try await session.run(statement) }
                } throws: { error in
                    (error as? PSQLError)?.serverInfo?[.sqlState] == "42501"
                }
            }
            #expect(try await store.read(tenant: tenant).count == 1)
        }
    }

    @Test func `even the owner cannot update or delete events while the trigger stands`() async throws {
        try await withStore { store, database in
            let tenant = TenantID()
            try await store.append(tenant: tenant, stream: try pet(), expected: .any, events: [try named("Rex")])
            await #expect(throws: PSQLError.self) {
                try await database.superuserURL.withConnection(logger: logger) { connection in
                    try await connection.execute("DELETE FROM events", logger: logger)
                }
            }
            #expect(try await store.read(tenant: tenant).count == 1)
        }
    }

    @Test func `every table with a tenant_id has row-level security enabled and forced`() async throws {
        let database = try await TestCluster.shared.database()
        let tables = try await rows(database.superuserURL, """
                SELECT c.relname::text, c.relrowsecurity, c.relforcerowsecurity,
                       EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid)
                  FROM pg_class c
                  JOIN pg_namespace n ON n.oid = c.relnamespace
                  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped
                 WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
                 ORDER BY 1
                """, as: (String, Bool, Bool, Bool).self)
        #expect(tables.count >= 19, "events, its partitions and event_heads at least")
        for (name, enabled, forced, hasPolicy) in tables {
            #expect(enabled && forced && hasPolicy, "\(name): RLS enabled \(enabled), forced \(forced), policy \(hasPolicy)")
        }
        let role = try await rows(database.superuserURL, "SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = 'petstore_app'", as: (Bool, Bool).self)
        #expect(role.count == 1 && role[0].0 == false && role[0].1 == false)
        let owns = try await scalar(database.superuserURL,
            "SELECT count(*) FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner WHERE r.rolname = 'petstore_app'", as: Int64.self)
        #expect(owns == 0, "the application's role owns no table")
    }

    @Test func `a tenant with a partition of its own keeps its events there`() async throws {
        try await withStore { store, database in
            let tenant = TenantID()
            let partition = try await store.createDedicatedPartition(for: tenant)
            #expect(partition == "events_t_" + tenant.description.replacingOccurrences(of: "-", with: ""))
            try await store.append(tenant: tenant, stream: try pet(), expected: .any, events: [try named("Rex")])
            let location = try await scalar(database.superuserURL,
                "SELECT tableoid::regclass::text FROM events WHERE tenant_id = \(tenant.rawValue)", as: String.self)
            #expect(location == partition)
            #expect(try await store.verify(tenant: tenant).valid)
            await #expect(throws: EventLogError.self, "a tenant with events in the shared partitions cannot move") {
                let other = TenantID()
                try await store.append(tenant: other, stream: try pet(), expected: .any, events: [try named("Tom")])
                _ = try await store.createDedicatedPartition(for: other)
            }
        }
    }
}
