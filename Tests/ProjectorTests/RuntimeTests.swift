import Database
import EventLog
import Foundation
import PetstoreTesting
import PostgresNIO
import Projectors
import Synchronization
import Testing

@Suite struct RuntimeTests {
    let logger = TestCluster.logger

    /// A database with the counter projection installed, and a runtime on it.
    func withCounter(
        batchSize: Int = 500, beforeCommit: @escaping @Sendable (TenantID, Int) throws -> Void = { _, _ in },
        _ body: (EventStore, ProjectionRuntime, TestDatabase) async throws -> Void
    ) async throws {
        let database = try await TestCluster.shared.database()
        try await ProjectionInstaller(definitions: [CounterProjector.definition]).install(database.ownerURL, logger: logger)
        try await database.withAppClient { client in
            let store = EventStore(client: client, logger: logger)
            let runtime = ProjectionRuntime(client: client, store: store, projectors: [CounterProjector()], batchSize: batchSize,
                                            logger: logger, beforeCommit: beforeCommit)
            try await body(store, runtime, database)
        }
    }

    @Test func `a projector killed between applying and committing a batch neither loses nor doubles an event`() async throws {
        struct Killed: Error {}
        let crashes = CrashSwitch()
        try await withCounter(batchSize: 7, beforeCommit: { _, _ in if crashes.take() { throw Killed() } }) { store, runtime, database in
            let tenant = TenantID()
            try await tick(store, tenant, count: 30)
            crashes.arm(times: 2)
            await #expect(throws: (any Error).self) { try await runtime.catchUpAll() }
            await #expect(throws: (any Error).self) { try await runtime.catchUpAll() }
            try await runtime.catchUpAll()
            let totals = try await rows(database.superuserURL, "SELECT applied FROM public.event_totals", as: Int64.self)
            #expect(totals == [30])
            let seen = try await rows(database.superuserURL, "SELECT seq, times FROM public.event_seen ORDER BY seq", as: (Int64, Int).self)
            #expect(seen.map(\.0) == Array(1...30) && seen.allSatisfy { $0.1 == 1 })
        }
    }

    @Test func `an append held open at an earlier seq is not skipped when later work is projected`() async throws {
        try await withCounter { store, runtime, database in
            let tenant = TenantID()
            try await tick(store, tenant, count: 3)
            try await runtime.catchUpAll()
            var later: Task<AppendResult, any Error>?
            try await store.database.withTenant(tenant) { holder in
                // Seq 4, appended and not yet committed.
                _ = try await store.append([StreamAppend(stream: try StreamName(type: "tick", id: UUID()), expected: .any,
                                                         events: [NewEvent(type: "Tick", data: .object([:]))])],
                                           metadata: .init(), in: holder)
                // Another writer wants seq 5; it waits for the head row.
                later = Task {
                    try await store.append(tenant: tenant, stream: try StreamName(type: "tick", id: UUID()), expected: .any,
                                           events: [NewEvent(type: "Tick", data: .object([:]))])
                }
                try await Task.sleep(for: .milliseconds(200))
                try await runtime.catchUpAll()
                let midway = try await rows(database.superuserURL, "SELECT applied FROM public.event_totals", as: Int64.self)
                #expect(midway == [3], "nothing past the open transaction is visible yet")
            }
            #expect(try await later?.value.firstSeq == 5)
            try await runtime.catchUpAll()
            let seen = try await rows(database.superuserURL, "SELECT seq FROM public.event_seen ORDER BY seq", as: Int64.self)
            #expect(seen == [1, 2, 3, 4, 5])
        }
    }

    @Test func `a command projected inline moves the projections that read none of its events past them, only if nothing came before`() async throws {
        let ticks = StreamCounterProjector(streamType: "tick"), tocks = StreamCounterProjector(streamType: "tock")
        let database = try await TestCluster.shared.database()
        try await ProjectionInstaller(definitions: [ticks.definition, tocks.definition]).install(database.ownerURL, logger: logger)
        try await database.withAppClient { client in
            let store = EventStore(client: client, logger: logger)
            let runtime = ProjectionRuntime(client: client, store: store, projectors: [ticks, tocks], logger: logger)
            let tenant = TenantID()
            func append(_ type: String) async throws -> AppendResult {
                try await store.append(tenant: tenant, stream: try StreamName(type: type, id: UUID()), expected: .any,
                                       events: [NewEvent(type: "Beat", data: .object([:]))])
            }
            /// A tick appended and projected inline for `tick_counter`, as a command does.
            func command() async throws {
                try await store.database.withTenant(tenant) { session in
                    let attempt = try await store.tryAppend([StreamAppend(stream: try StreamName(type: "tick", id: UUID()), expected: .any,
                                                                          events: [NewEvent(type: "Beat", data: .object([:]))])], in: session)
                    guard case .appended(let result, let recorded) = attempt else { throw EventLogError(.wrongExpectedVersion, "no append") }
                    try await runtime.projectInline(session, projections: ["tick_counter"], through: result.lastSeq, appended: recorded,
                                                    using: store.database)
                }
            }
            func checkpoints() async throws -> [String: Int64] {
                Dictionary(uniqueKeysWithValues: try await rows(database.superuserURL, """
                    SELECT projection, applied_seq FROM public.projection_checkpoints WHERE tenant_id = \(tenant)
                    """, as: (String, Int64).self).map { ($0.0, $0.1) })
            }
            _ = try await append("tick")
            try await runtime.catchUpAll()
            #expect(try await checkpoints() == ["tick_counter": 1, "tock_counter": 1])

            // A tick command: tocks read no ticks, and had everything before it, so they move too.
            try await command()
            #expect(try await checkpoints() == ["tick_counter": 2, "tock_counter": 2])

            // A tock nobody projected yet (seq 3), then a tick command (seq 4): the tock counter
            // must not be moved past the tock it has not applied; the tick counter skips the tock.
            _ = try await append("tock")
            try await command()
            #expect(try await checkpoints() == ["tick_counter": 4, "tock_counter": 2])
            try await runtime.catchUpAll()
            #expect(try await checkpoints() == ["tick_counter": 4, "tock_counter": 4])
            let tickTotals = try await rows(database.superuserURL, "SELECT applied FROM public.tick_totals", as: Int64.self)
            let tockTotals = try await rows(database.superuserURL, "SELECT applied FROM public.tock_totals", as: Int64.self)
            #expect(tickTotals == [3] && tockTotals == [1])
            let types = try await rows(database.superuserURL, "SELECT array_to_string(types, ',') FROM public.tick_totals UNION ALL SELECT array_to_string(types, ',') FROM public.tock_totals", as: String.self)
            #expect(types == ["tick", "tock"], "each counter was given its own stream type's events only")
        }
    }

    @Test func `two runtimes on one database share the work and apply each event once`() async throws {
        let database = try await TestCluster.shared.database()
        try await ProjectionInstaller(definitions: [CounterProjector.definition]).install(database.ownerURL, logger: logger)
        let tenants = (0..<6).map { _ in TenantID() }
        try await database.withAppClient { first in
            try await database.withAppClient { second in
                let store = EventStore(client: first, logger: logger)
                for tenant in tenants { try await tick(store, tenant, count: 40) }
                let runtimes = [first, second].map {
                    ProjectionRuntime(client: $0, store: EventStore(client: $0, logger: logger), projectors: [CounterProjector()], batchSize: 5, logger: logger)
                }
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for runtime in runtimes { group.addTask { try await runtime.catchUpAll() } }
                    try await group.waitForAll()
                }
            }
        }
        let totals = try await rows(database.superuserURL, "SELECT applied FROM public.event_totals", as: Int64.self)
        #expect(totals.count == 6 && totals.allSatisfy { $0 == 40 })
        let doubled = try await rows(database.superuserURL, "SELECT count(*) FROM public.event_seen WHERE times <> 1", as: Int64.self)
        #expect(doubled == [0])
    }

    @Test func `a changed projection file builds beside the served version and is switched to when caught up`() async throws {
        try await withCounter { store, runtime, database in
            let tenant = TenantID()
            try await tick(store, tenant, count: 12)
            try await runtime.catchUpAll()
            let old = CounterProjector.definition
            let new = ProjectionDefinition(name: old.name, sql: old.sql + "\n-- v2: same tables, new version")
            try await ProjectionInstaller(definitions: [new]).install(database.ownerURL, logger: logger)
            let states = try await rows(database.superuserURL,
                "SELECT version, state FROM projections WHERE name = 'event_counter' ORDER BY state", as: (String, String).self)
            #expect(states.map(\.1) == ["active", "building"])
            #expect(try await viewTarget(database) == old.schemaName, "the old version serves while the new one builds")

            try await runtime.finishBuilding()
            #expect(try await viewTarget(database) == new.schemaName)
            // Caught up at once, but served only once every server's commands catch it up too.
            let built = try await rows(database.superuserURL, """
                SELECT extract(epoch FROM activated_at - created_at)::float8 FROM projections WHERE name = 'event_counter' AND version = \(new.version)
                """, as: Double.self)
            #expect(built.count == 1 && built[0] >= 2, "not switched before its minimum build time: \(built)")
            let totals = try await rows(database.superuserURL, "SELECT applied FROM public.event_totals", as: Int64.self)
            #expect(totals == [12], "the new version was built from the log")
            let after = try await rows(database.superuserURL,
                "SELECT state FROM projections WHERE name = 'event_counter' ORDER BY version = \(old.version) DESC", as: String.self)
            #expect(after == ["retired", "active"])
        }
    }

    @Test func `a rebuild replaces a tenant's rows from the log in one go, for one tenant or all`() async throws {
        try await withCounter(batchSize: 4) { store, runtime, database in
            let first = TenantID(), second = TenantID()
            try await tick(store, first, count: 9)
            try await tick(store, second, count: 5)
            try await runtime.catchUpAll()
            let calls = Mutex<[Int]>([])
            try await runtime.rebuild("event_counter") { done, total in calls.withLock { $0.append(done * 100 + total) } }
            #expect(calls.withLock { $0 } == [102, 202], "progress per tenant")
            try await runtime.rebuild("event_counter", tenant: first)
            let totals = try await rows(database.superuserURL, "SELECT applied FROM public.event_totals ORDER BY applied", as: Int64.self)
            #expect(totals == [5, 9], "rebuilt, not added to")
            let doubled = try await rows(database.superuserURL, "SELECT count(*) FROM public.event_seen WHERE times <> 1", as: Int64.self)
            #expect(doubled == [0])
            await #expect(throws: DatabaseError.self) { try await runtime.rebuild("no_such_projection") }
        }
    }

    func viewTarget(_ database: TestDatabase) async throws -> String? {
        try await rows(database.superuserURL, """
            SELECT DISTINCT n.nspname::text FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid
              JOIN pg_class v ON v.oid = r.ev_class JOIN pg_class t ON t.oid = d.refobjid JOIN pg_namespace n ON n.oid = t.relnamespace
             WHERE v.relname = 'event_totals' AND v.relkind = 'v' AND t.oid <> v.oid
            """, as: String.self).first
    }
}

/// Throws on the next `times` calls of `take()`.
final class CrashSwitch: Sendable {
    private let remaining = Mutex(0)
    func arm(times: Int) { remaining.withLock { $0 = times } }
    func take() -> Bool { remaining.withLock { value in defer { value = max(0, value - 1) }; return value > 0 } }
}
