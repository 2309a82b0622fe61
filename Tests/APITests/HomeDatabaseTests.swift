import Database
import Foundation
import Operations
import PetstoreTesting
import PostgresNIO
import ServiceLifecycleTestKit
import Synchronization
import Testing

/// Databases of their own on a second server, and the bounded pools that reach them.
@Suite struct HomeDatabaseTests {
    @Test func `a tenant database is made and migrated on another server, and a run stopped half-way is finished by the next`() async throws {
        let server = try await TestCluster.second.serverURL()
        let name = HomeDatabases.name(for: TenantID())
        try await HomeDatabases.ensure(name, on: server, logger: TestCluster.logger)
        try await HomeDatabases.ensure(name, on: server, logger: TestCluster.logger)
        let url = server.with(database: name)
        #expect(try await scalar(url, "SELECT count(*)::int FROM schema_migrations", as: Int.self) == (try Migration.schema().count))
        #expect(try await scalar(url, "SELECT count(*)::int FROM projections WHERE state = 'active'", as: Int.self) == 3)

        // Made, but never migrated (the run stopped after CREATE DATABASE): the next run migrates it.
        let stopped = HomeDatabases.name(for: TenantID())
        try await server.withConnection(logger: TestCluster.logger) { try await $0.run(trusted: "CREATE DATABASE \(stopped)", logger: TestCluster.logger) }
        try await HomeDatabases.ensure(stopped, on: server, logger: TestCluster.logger)
        #expect(try await scalar(server.with(database: stopped), "SELECT count(*)::int FROM schema_migrations", as: Int.self) == (try Migration.schema().count))

        await #expect(throws: DatabaseError.self) { try await HomeDatabases.ensure("postgres; DROP", on: server, logger: TestCluster.logger) }
    }

    @Test func `pools to many databases on one server stay within the server's bound and close when idle`() async throws {
        let server = try await TestCluster.second.serverURL()
        var names: [String] = []
        for _ in 0..<8 {
            let name = HomeDatabases.name(for: TenantID())
            try await HomeDatabases.ensure(name, on: server, logger: TestCluster.logger)
            names.append(name)
        }
        let limits = HomePools.Limits(perDatabase: 2, perServer: 3, idleTimeout: .milliseconds(500), wait: .seconds(20))
        let pools = HomePools(limits: limits, logger: TestCluster.logger) { name in
            guard name == "second" else { throw DatabaseError(.invalidURL, "no server \(name)") }
            return server
        }
        let mostPools = Highest(), mostConnections = Highest()
        let counting: PostgresQuery = "SELECT count(*)::int FROM pg_stat_activity WHERE datname = ANY(\(names)) AND application_name = \(PoolName.applicationName("home"))"
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<64 {
                let name = names[index % names.count]
                group.addTask {
                    let (database, role) = try await pools.withConnection(server: "second", database: name) { connection in
                        try await connection.query("SELECT current_database(), current_user::text FROM pg_sleep(0.05)", logger: TestCluster.logger)
                            .decode((String, String).self).first(where: { _ in true }) ?? ("", "")
                    }
                    #expect(database == name && role == "petstore_app")
                    let open = await pools.openPools(on: "second")
                    mostPools.saw(open)
                }
            }
            group.addTask {
                for _ in 0..<30 {
                    let connections = try await scalar(server, counting, as: Int.self) ?? 0
                    mostConnections.saw(connections)
                    try await Task.sleep(for: .milliseconds(20))
                }
            }
            try await group.waitForAll()
        }
        #expect(mostPools.value <= 3)
        // perServer × perDatabase is 6; a closed pool's backends may take a moment to leave
        // pg_stat_activity, hence 2 more. Unbounded, eight databases would reach 16.
        #expect(mostConnections.value <= 8, "at most perServer × perDatabase connections")
        #expect(mostConnections.value > 0, "the sampling saw the sessions")
        // Unused, the connections close on their own.
        var left = -1
        for _ in 0..<100 where left != 0 {
            try await Task.sleep(for: .milliseconds(100))
            left = try await scalar(server, counting, as: Int.self) ?? -1
        }
        #expect(left == 0)
        await pools.closeAll()
        await #expect(throws: DatabaseError.self) {
            try await pools.withConnection(server: "elsewhere", database: names[0]) { _ in 0 }
        }
    }

    @Test func `a database that is gone fails its callers within the wait, not when the pool gives up a minute later`() async throws {
        let server = try await TestCluster.second.serverURL()
        let name = HomeDatabases.name(for: TenantID())
        try await HomeDatabases.ensure(name, on: server, logger: TestCluster.logger)
        let limits = HomePools.Limits(perDatabase: 2, perServer: 3, idleTimeout: .milliseconds(200), wait: .seconds(2))
        let pools = HomePools(limits: limits, logger: TestCluster.logger) { _ in server }
        #expect(try await pools.withConnection(server: "second", database: name) { connection in
            try await connection.query("SELECT 1", logger: TestCluster.logger).decode(Int.self).first(where: { _ in true })
        } == 1)
        // Dropped under the open pool (as a purge does), its connections gone.
        try await TestCluster.second.superuserURL(database: "postgres").withConnection(logger: TestCluster.logger) { connection in
            try await connection.query(PostgresQuery(unsafeSQL: "DROP DATABASE \(name) WITH (FORCE)"), logger: TestCluster.logger).consume()
        }
        let started = ContinuousClock.now
        await #expect(throws: DatabaseError.self) {
            try await pools.withConnection(server: "second", database: name) { _ in 0 }
        }
        let waited = ContinuousClock.now - started
        #expect(waited < .seconds(10), "waited \(waited)")
        await pools.closeAll()
    }

    @Test func `a request's lease is bounded by its own deadline, with no leasing task; a task it starts gets one`() async throws {
        let server = try await TestCluster.second.serverURL()
        let name = HomeDatabases.name(for: TenantID())
        try await HomeDatabases.ensure(name, on: server, logger: TestCluster.logger)
        let limits = HomePools.Limits(perDatabase: 2, perServer: 3, idleTimeout: .seconds(60), wait: .seconds(3))
        let pools = HomePools(limits: limits, logger: TestCluster.logger) { _ in server }
        let one: @Sendable () async throws -> Int? = {
            try await pools.withConnection(server: "second", database: name) { connection in
                try await connection.query("SELECT 1", logger: TestCluster.logger).decode(Int.self).first(where: { _ in true })
            }
        }
        // Cancelled at its deadline as DeadlineResponder does, a request leases in its own task.
        let request = Task { try await TaskDeadline.withCancellation(at: .now + .seconds(1)) { try await one() } }
        #expect(try await request.value == 1)
        #expect(pools.handedOffLeases == 0)
        // A deadline further off than the pool's own wait does not bound the lease: a leasing task does.
        let slow = Task { try await TaskDeadline.withCancellation(at: .now + .seconds(30)) { try await one() } }
        #expect(try await slow.value == 1)
        #expect(pools.handedOffLeases == 1)

        try await TestCluster.second.superuserURL(database: "postgres").withConnection(logger: TestCluster.logger) { connection in
            try await connection.query(PostgresQuery(unsafeSQL: "DROP DATABASE \(name) WITH (FORCE)"), logger: TestCluster.logger).consume()
        }
        // The database gone, the request's lease ends when the request is cut off, well before
        // the pool's wait, and the pool it was waiting on is closed.
        let started = ContinuousClock.now
        let cutOff = Task { try await TaskDeadline.withCancellation(at: .now + .milliseconds(300)) { try await one() } }
        try await Task.sleep(for: .milliseconds(300))
        cutOff.cancel()
        await #expect(throws: (any Error).self) { try await cutOff.value }
        let waited = ContinuousClock.now - started
        #expect(waited < limits.wait, "ended by the cancellation, after \(waited)")
        #expect(pools.handedOffLeases == 1)
        #expect(await pools.openPools(on: "second") == 0)

        // A task started inside the request inherits its task-locals, not its cancellation: its
        // lease is bounded by a leasing task, and fails within the pool's wait.
        let inner = Task {
            try await TaskDeadline.withCancellation(at: .now + .milliseconds(300)) {
                try await Task { try await one() }.value
            }
        }
        await #expect(throws: DatabaseError.self) { try await inner.value }
        #expect(pools.handedOffLeases == 2)
        await pools.closeAll()
    }

    @Test func `a pool opened while the server shuts down still serves, until the pools shut down for good`() async throws {
        let server = try await TestCluster.second.serverURL()
        let name = HomeDatabases.name(for: TenantID())
        try await HomeDatabases.ensure(name, on: server, logger: TestCluster.logger)
        let limits = HomePools.Limits(perDatabase: 2, perServer: 3, idleTimeout: .seconds(60), wait: .seconds(3))
        let pools = HomePools(limits: limits, logger: TestCluster.logger) { _ in server }
        try await testGracefulShutdown { trigger in
            trigger.triggerGracefulShutdown()
            // A projection pass finishing its work: the pool it opens now is not stopped by
            // the shutdown under way, which would leave the lease to wait out `limits.wait`.
            let started = ContinuousClock.now
            let one = try await pools.withConnection(server: "second", database: name) { connection in
                try await connection.query("SELECT 1", logger: TestCluster.logger).decode(Int.self).first(where: { _ in true })
            }
            #expect(one == 1)
            #expect(ContinuousClock.now - started < limits.wait)
        }
        await pools.shutDown()
        let started = ContinuousClock.now
        await #expect(throws: DatabaseError.self) { try await pools.withConnection(server: "second", database: name) { _ in 0 } }
        #expect(ContinuousClock.now - started < .seconds(1), "refused at once")
        #expect(await pools.openPools(on: "second") == 0)
    }

    @Test func `a tenant database is dropped while a session the login may not end is still leaving it`() async throws {
        let server = try await TestCluster.second.serverURL()
        let name = HomeDatabases.name(for: TenantID())
        try await HomeDatabases.ensure(name, on: server, logger: TestCluster.logger)
        // A superuser's session (as an autovacuum worker's is, for this purpose): not the owner's to end.
        let session = Task {
            try await TestCluster.second.superuserURL(database: name).withConnection(logger: TestCluster.logger) { connection in
                try await connection.run(trusted: "SELECT pg_sleep(2)", logger: TestCluster.logger)
            }
        }
        let present: PostgresQuery = "SELECT count(*)::int FROM pg_stat_activity WHERE datname = \(name)"
        for _ in 0..<200 {
            if try await scalar(server, present, as: Int.self) ?? 0 > 0 { break }
            try await Task.sleep(for: .milliseconds(10))
        }
        // What a bare WITH (FORCE) does meanwhile: refuses, and the database stays.
        await #expect(throws: PSQLError.self) {
            try await server.withConnection(logger: TestCluster.logger) { connection in
                try await connection.run(trusted: "DROP DATABASE \(name) WITH (FORCE)", logger: TestCluster.logger)
            }
        }
        try await server.withConnection(logger: TestCluster.logger) { connection in
            try await HomeDatabases.drop(name, on: connection, logger: TestCluster.logger)
        }
        #expect(try await scalar(server, "SELECT count(*)::int FROM pg_database WHERE datname = \(name)", as: Int.self) == 0)
        try await session.value
    }
}

/// The highest value seen, from many tasks.
final class Highest: Sendable {
    private let highest = Mutex(0)
    func saw(_ value: Int) { highest.withLock { $0 = max($0, value) } }
    var value: Int { highest.withLock { $0 } }
}
