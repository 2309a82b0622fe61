import API
import Database
import EventLog
import Foundation
import Logging
import Operations
import PetstoreTesting
import PostgresNIO
import ServiceLifecycle
import ServiceLifecycleTestKit
import Tenancy
import Testing

@Suite struct SecurityLogTests {
    func attempt(_ actor: Principal, target: TenantID, route: String = "/api/pets/{id}") -> SecurityLog.Attempt {
        .init(kind: .crossTenant, actor: actor, targetTenant: target, targetSlug: "target", method: "GET", route: route,
              clientAddress: "127.0.0.1", requestID: UUID().uuidString)
    }

    @Test func `attempts recorded just before a graceful shutdown are written, not lost`() async throws {
        let database = try await TestCluster.shared.database()
        try await database.withAppClient { client in
            let store = EventStore(client: client, logger: TestCluster.logger)
            // A long interval: only the shutdown flush can write these.
            let log = SecurityLog(client: client, store: store, interval: .seconds(3600), logger: TestCluster.logger)
            let actor = Principal(tenant: TenantID(), userID: UUID(), keyID: UUID(), role: .admin)
            let target = TenantID()
            try await testGracefulShutdown { trigger in
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask { try await log.run() }
                    try await Task.sleep(for: .milliseconds(50))
                    for _ in 0..<250 { log.record(attempt(actor, target: target)) }
                    log.record(attempt(actor, target: target, route: "/api/pets"))
                    trigger.triggerGracefulShutdown()
                    try await group.waitForAll()
                }
            }
            let rows = try await database.superuserURL.withConnection(logger: TestCluster.logger) { connection in
                var rows: [(String, Int)] = []
                let sequence = try await connection.query("SELECT route, attempts FROM security_events ORDER BY route", logger: TestCluster.logger)
                for try await row in sequence.decode((String, Int).self) { rows.append(row) }
                return rows
            }
            #expect(rows.map(\.0) == ["/api/pets", "/api/pets/{id}"])
            #expect(rows.map(\.1) == [1, 250])
            let events = try await store.read(tenant: target)
            #expect(events.count == 2 && events.allSatisfy { $0.type == "CrossTenantAccessAttempted" })
        }
    }

    @Test(.timeLimit(.minutes(1)))
    func `a shutdown whose last flush waits on a locked table still ends, the entries given up`() async throws {
        let database = try await TestCluster.shared.database()
        try await database.withAppClient { client in
            let store = EventStore(client: client, logger: TestCluster.logger)
            let log = SecurityLog(client: client, store: store, interval: .seconds(3600), logger: TestCluster.logger)
            let actor = Principal(tenant: TenantID(), userID: UUID(), keyID: UUID(), role: .admin)
            // Another session holds the table: the write waits on its lock, which is never let go
            // before the shutdown is over (no statement timeout on this pool).
            try await database.superuserURL.withConnection(logger: TestCluster.logger) { holder in
                try await holder.query("BEGIN", logger: TestCluster.logger).consume()
                try await holder.query("LOCK TABLE security_events IN ACCESS EXCLUSIVE MODE", logger: TestCluster.logger).consume()
                let started = ContinuousClock.now
                try await testGracefulShutdown { trigger in
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        group.addTask { try await log.run() }
                        log.record(attempt(actor, target: TenantID()))
                        try await Task.sleep(for: .milliseconds(50))
                        trigger.triggerGracefulShutdown()
                        try await group.waitForAll()
                    }
                }
                // Still under the lock: the shutdown ended without the write.
                let written = try await holder.query("SELECT count(*) FROM security_events", logger: TestCluster.logger)
                    .decode(Int.self).first(where: { _ in true })
                #expect(written == 0)
                #expect(ContinuousClock.now - started >= SecurityLog.shutdownWait, "it waited for the write as long as it may")
                try await holder.query("ROLLBACK", logger: TestCluster.logger).consume()
            }
        }
    }

    @Test func `a flush that cannot reach the database keeps its entries for the next one`() async throws {
        let database = try await TestCluster.shared.database()
        let actor = Principal(tenant: TenantID(), userID: UUID(), keyID: UUID(), role: .member)
        // A client pointed at a port where nothing listens: every write fails.
        var unreachable = database.appURL
        unreachable.port = 1
        let deadClient = PostgresClient(configuration: unreachable.clientConfiguration(maximumConnections: 1), backgroundLogger: TestCluster.logger)
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await deadClient.run() }
            defer { group.cancelAll() }
            let log = SecurityLog(client: deadClient, store: EventStore(client: deadClient, logger: TestCluster.logger), logger: TestCluster.logger)
            for _ in 0..<3 { log.record(attempt(actor, target: TenantID())) }
            #expect(log.pendingAttempts == 3)
            await withTaskGroup(of: Void.self) { flushGroup in
                flushGroup.addTask { await log.flush() }
                flushGroup.addTask { try? await Task.sleep(for: .seconds(2)) }
                _ = await flushGroup.next()
                flushGroup.cancelAll()
            }
            #expect(log.pendingAttempts == 3, "nothing was written, so nothing may be forgotten")
        }
    }
}
