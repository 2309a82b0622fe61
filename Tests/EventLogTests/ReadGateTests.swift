import Database
import Foundation
import PetstoreTesting
import PostgresNIO
import Synchronization
import Testing
@testable import EventLog

/// Reads wait their turn on each server, first come first served; one that runs into overtime
/// (stuck on a lock or a stalled server) stops holding the others back; a wait past its bound
/// is a 503-class fault.
@Suite struct ReadGateTests {
    @Test func `reads past the capacity wait, and are let in in the order they came`() async throws {
        let gate = ReadGate(.init(capacity: 2, overtime: .seconds(60), wait: .seconds(30)))
        let holding = Latch()
        let order = Recorder<[Int]>([])
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<2 {
                group.addTask { try await gate.admitted(on: "main") { await holding.wait() } }
            }
            try await until { gate.load(on: "main") == (2, 0) }
            for index in 0..<3 {
                group.addTask { try await gate.admitted(on: "main") { order.value.withLock { $0.append(index) } } }
                try await until { gate.load(on: "main").waiting == index + 1 }
            }
            #expect(order.value.withLock { $0 }.isEmpty, "no read past the capacity ran while two held the server")
            #expect(try await gate.admitted(on: "other") { 7 } == 7, "another server's reads are not held back")
            holding.open()
            try await group.waitForAll()
        }
        #expect(order.value.withLock { $0 } == [0, 1, 2])
        #expect(gate.load(on: "main") == (0, 0))
        #expect(gate.overtimeReads == 0)
    }

    @Test func `a read past its overtime stops counting, and the one behind it runs`() async throws {
        let gate = ReadGate(.init(capacity: 1, overtime: .milliseconds(100), wait: .seconds(30)))
        let holding = Latch()
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await gate.admitted(on: "main") { await holding.wait() } }
            try await until { gate.load(on: "main").running == 1 }
            // The first read is still held: the second gets in only because the first ran over.
            #expect(try await gate.admitted(on: "main") { "second" } == "second")
            #expect(gate.overtimeReads == 1)
            holding.open()
            try await group.waitForAll()
        }
        #expect(gate.load(on: "main") == (0, 0), "the read that ran over was not counted twice")
    }

    @Test func `a read that waits past the bound fails as the database being busy, and takes no turn`() async throws {
        let gate = ReadGate(.init(capacity: 1, overtime: .seconds(60), wait: .milliseconds(200)))
        let holding = Latch()
        let ran = Mutex(false)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await gate.admitted(on: "main") { await holding.wait() } }
            try await until { gate.load(on: "main").running == 1 }
            await #expect {
                try await gate.admitted(on: "main") { ran.withLock { $0 = true } }
            } throws: { error in
                (error as? DatabaseError)?.code == .busy && DatabaseFault.classify(error) == .unavailable
            }
            #expect(gate.load(on: "main") == (1, 0))
            holding.open()
            try await group.waitForAll()
        }
        #expect(!ran.withLock { $0 })
        #expect(gate.load(on: "main") == (0, 0))
    }

    @Test func `a waiting read that is cancelled leaves at once and takes no turn`() async throws {
        let gate = ReadGate(.init(capacity: 1, overtime: .seconds(60), wait: .seconds(60)))
        let holding = Latch()
        let ran = Recorder(false)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await gate.admitted(on: "main") { await holding.wait() } }
            try await until { gate.load(on: "main").running == 1 }
            let waiting = Task { try await gate.admitted(on: "main") { ran.value.withLock { $0 = true } } }
            try await until { gate.load(on: "main").waiting == 1 }
            waiting.cancel()
            await #expect(throws: CancellationError.self) { try await waiting.value }
            #expect(gate.load(on: "main") == (1, 0))
            holding.open()
            try await group.waitForAll()
        }
        #expect(!ran.value.withLock { $0 })
    }

    @Test func `a tenant's read stuck on a lock in PostgreSQL does not hold back another tenant's read`() async throws {
        let database = try await TestCluster.shared.database()
        let gate = ReadGate(.init(capacity: 1, overtime: .milliseconds(100), wait: .seconds(30)))
        try await database.withAppClient { client in
            let store = EventStore(client: client, reads: gate, logger: TestCluster.logger)
            let stuck = TenantID(), other = TenantID()
            try await store.append(tenant: stuck, stream: try pet(), expected: .any, events: [try named("Stuck")])
            try await store.append(tenant: other, stream: try pet(), expected: .any, events: [try named("Other")])
            try await database.superuserURL.withConnection(logger: TestCluster.logger) { holder in
                try await holder.query("SELECT pg_advisory_lock(4242)", logger: TestCluster.logger).consume()
                let blocked = Task {
                    try await store.database.readTenant(stuck) { session in
                        try await session.run("SELECT pg_advisory_xact_lock(4242)")
                        return try await store.read(after: 0, limit: 10, in: session).count
                    }
                }
                try await until { gate.load(on: "main").running == 1 || gate.overtimeReads == 1 }
                // The gate lets one read in at a time; the stuck one still waits on the lock.
                #expect(try await store.database.readTenant(other) { session in try await store.read(after: 0, limit: 10, in: session).count } == 1)
                #expect(gate.overtimeReads == 1)
                let locks = try await holder.query(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 4242 AND NOT granted", logger: TestCluster.logger)
                #expect(try await locks.decode(Int64.self).first(where: { _ in true }) == 1, "the stuck read was still waiting")
                try await holder.query("SELECT pg_advisory_unlock(4242)", logger: TestCluster.logger).consume()
                #expect(try await blocked.value == 1)
            }
        }
        #expect(gate.load(on: "main") == (0, 0))
    }
}

/// Waits for `condition`, polling; fails past 10 s.
private func until(_ condition: () -> Bool) async throws {
    let deadline = ContinuousClock.now + .seconds(10)
    while !condition() {
        guard ContinuousClock.now < deadline else {
            Issue.record("the condition did not come true within 10 s")
            throw CancellationError()
        }
        try await Task.sleep(for: .milliseconds(5))
    }
}

/// Holds whoever waits on it until it is opened.
private final class Latch: Sendable {
    private let state = Mutex<(open: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    func wait() async {
        await withCheckedContinuation { continuation in
            let open = state.withLock { state in
                if !state.open { state.waiters.append(continuation) }
                return state.open
            }
            if open { continuation.resume() }
        }
    }

    func open() {
        let waiters = state.withLock { state in
            state.open = true
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }
}

private final class Recorder<Value: Sendable>: Sendable {
    let value: Mutex<Value>

    init(_ value: Value) { self.value = Mutex(value) }
}
