import Database
import Foundation
import PetstoreTesting
import PostgresNIO
import Testing
@testable import EventLog

@Suite struct ConcurrencyTests {
    @Test func `many writers on one tenant and writers on twenty others leave every log gap-free, unique and verified`() async throws {
        try await withStore(maximumConnections: 24) { store, database in
            let busy = TenantID()
            let others = (0..<20).map { _ in TenantID() }
            let writers = 16, appendsPerWriter = 500, appendsPerOther = 50
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<writers {
                    group.addTask {
                        // A few streams per writer, appended with .any: contention is on the head row.
                        let streams = try (0..<5).map { _ in try pet() }
                        for index in 0..<appendsPerWriter {
                            try await store.append(tenant: busy, stream: streams[index % streams.count], expected: .any,
                                                   events: [NewEvent(type: "Tick", data: .object(["n": .number(Double(index))]))])
                        }
                    }
                }
                for tenant in others {
                    group.addTask {
                        let stream = try pet()
                        for index in 0..<appendsPerOther {
                            try await store.append(tenant: tenant, stream: stream, expected: .exact(index),
                                                   events: [NewEvent(type: "Tick", data: .object(["n": .number(Double(index))]))])
                        }
                    }
                }
                try await group.waitForAll()
            }

            for (tenant, expected) in [(busy, writers * appendsPerWriter)] + others.map({ ($0, appendsPerOther) }) {
                let seqs = try await rows(database.superuserURL, "SELECT seq FROM events WHERE tenant_id = \(tenant.rawValue) ORDER BY seq", as: Int64.self)
                #expect(seqs == Array(1...Int64(expected)), "tenant \(tenant) has a gap or a duplicate")
                let verification = try await store.verify(tenant: tenant)
                #expect(verification.valid, "\(verification.reason ?? "")")
                #expect(verification.headSeq == Int64(expected))
            }
            let duplicates = try await scalar(database.superuserURL, """
                SELECT count(*) FROM (SELECT 1 FROM events GROUP BY tenant_id, stream_type, stream_id, stream_version HAVING count(*) > 1) d
                """, as: Int64.self)
            #expect(duplicates == 0)
            let versionsAreDense = try await scalar(database.superuserURL, """
                SELECT bool_and(max_version = events) FROM (
                  SELECT max(stream_version) AS max_version, count(*) AS events FROM events GROUP BY tenant_id, stream_type, stream_id) s
                """, as: Bool.self)
            #expect(versionsAreDense == true)
        }
    }

    @Test func `of sixty-four appends with the same expected version exactly one succeeds`() async throws {
        try await withStore(maximumConnections: 32) { store, _ in
            let tenant = TenantID()
            let rex = try pet()
            try await store.append(tenant: tenant, stream: rex, expected: .noStream, events: [try named("Rex")])
            let outcomes = try await withThrowingTaskGroup(of: Bool.self) { group in
                for index in 0..<64 {
                    group.addTask {
                        do {
                            try await store.append(tenant: tenant, stream: rex, expected: .exact(1), events: [try named("Rex \(index)")])
                            return true
                        } catch let error as EventLogError where error.code == .wrongExpectedVersion {
                            return false
                        }
                    }
                }
                return try await group.reduce(into: [Bool]()) { $0.append($1) }
            }
            #expect(outcomes.filter { $0 }.count == 1)
            #expect(try await store.read(tenant: tenant).map(\.seq) == [1, 2])
        }
    }

    @Test func `an append to one tenant does not wait for another tenant's lock`() async throws {
        try await withStore { store, database in
            let blocked = TenantID(), free = TenantID()
            try await store.append(tenant: blocked, stream: try pet(), expected: .any, events: [try named("A")])
            try await database.ownerURL.withConnection(logger: TestCluster.logger) { holder in
                try await holder.execute("BEGIN", logger: TestCluster.logger)
                try await holder.execute("SELECT set_config('app.tenant_id', \(blocked.description), true)", logger: TestCluster.logger)
                try await holder.execute("SELECT 1 FROM event_heads WHERE tenant_id = \(blocked.rawValue) FOR UPDATE", logger: TestCluster.logger)

                let start = ContinuousClock.now
                try await store.append(tenant: free, stream: try pet(), expected: .any, events: [try named("B")])
                #expect(ContinuousClock.now - start < .seconds(2))

                // The locked tenant's append waits until the holder lets go, then gets the next seq.
                async let waiting = store.append(tenant: blocked, stream: try pet(), expected: .any, events: [try named("C")])
                try await Task.sleep(for: .milliseconds(300))
                try await holder.execute("COMMIT", logger: TestCluster.logger)
                #expect(try await waiting.firstSeq == 2)
            }
        }
    }
}
