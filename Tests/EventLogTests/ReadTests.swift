import Database
import Foundation
import PetstoreTesting
import Testing
@testable import EventLog

@Suite struct ReadTests {
    @Test func `the log streams page by page in order`() async throws {
        try await withStore { store, _ in
            let tenant = TenantID()
            for batch in 0..<5 {
                try await store.append(tenant: tenant, stream: try pet(), expected: .noStream,
                                       events: try (0..<7).map { try named("Pet \(batch)-\($0)") })
            }
            var seqs: [Int64] = []
            for try await event in store.events(tenant: tenant, after: 3, pageSize: 4) { seqs.append(event.seq) }
            #expect(seqs == Array(4...35))
        }
    }

    @Test func `a stream read up to a time returns the state of that moment`() async throws {
        try await withStore { store, _ in
            let tenant = TenantID()
            let rex = try pet()
            try await store.append(tenant: tenant, stream: rex, expected: .noStream, events: [try named("Rex")])
            try await Task.sleep(for: .milliseconds(20))
            let between = Date()
            try await Task.sleep(for: .milliseconds(20))
            try await store.append(tenant: tenant, stream: rex, expected: .exact(1), events: [try named("Rex II")])
            let then = try await store.read(tenant: tenant, stream: rex, until: between)
            #expect(then.map { $0.data["name"] } == [.string("Rex")])
            #expect(try await store.read(tenant: tenant, until: between).count == 1)
            #expect(try await store.read(tenant: tenant, stream: rex).count == 2)
        }
    }

    @Test func `the cross-tenant read keeps a cursor per tenant and misses nothing`() async throws {
        try await withStore { store, _ in
            let tenants = (0..<3).map { _ in TenantID() }
            for (index, tenant) in tenants.enumerated() {
                try await store.append(tenant: tenant, stream: try pet(), expected: .any, events: try (0...index).map { try named("P\($0)") })
            }
            var cursors: [TenantID: Int64] = [:]
            var seen: [TenantID: [Int64]] = [:]
            func drain() async throws {
                for _ in 0..<20 {
                    let page = try await store.readAll(after: cursors, limitPerTenant: 1)
                    if page.isEmpty { return }
                    for (tenant, events) in page {
                        seen[tenant, default: []] += events.map(\.seq)
                        cursors[tenant] = events.last?.seq
                    }
                }
                Issue.record("the cursors did not reach the end in 20 pages")
            }
            try await drain()
            #expect(tenants.map { seen[$0] ?? [] } == [[1], [1, 2], [1, 2, 3]])
            try await store.append(tenant: tenants[0], stream: try pet(), expected: .any, events: [try named("Late")])
            try await drain()
            #expect(seen[tenants[0]] == [1, 2])
        }
    }
}

@Suite struct RegistryTests {
    struct PetNamedV1: EventPayload {
        static let eventType = "PetNamed"
        static let schemaVersion = 1
        let fullName: String
    }

    static func registry() -> EventTypeRegistry {
        var registry = EventTypeRegistry()
        registry.register(PetNamed.self)
        // v1 had one `full_name`; v2 splits a nickname out of quotes: `Rex "Rexy"`.
        registry.register(Upcaster(eventType: "PetNamed", fromVersion: 1) { data in
            let full = data["full_name"]?.stringValue ?? ""
            let parts = full.split(separator: "\"")
            let name = parts.first.map { $0.trimmingCharacters(in: .whitespaces) } ?? full
            return .object([
                .init("name", .string(name)),
                .init("nickname", parts.count > 1 ? .string(String(parts[1])) : .null),
            ])
        })
        return registry
    }

    @Test func `an event stored as v1 reads as v2`() async throws {
        try await withStore { store, _ in
            let tenant = TenantID()
            let rex = try pet()
            try await store.append(tenant: tenant, stream: rex, expected: .noStream, events: [try NewEvent(PetNamedV1(fullName: "Rex \"Rexy\""))])
            try await store.append(tenant: tenant, stream: rex, expected: .exact(1), events: [try named("Tom")])
            let stored = try await store.read(tenant: tenant)
            #expect(stored.map(\.schemaVersion) == [1, 2])
            let decoded = try stored.map { try Self.registry().decode($0) as? PetNamed }
            #expect(decoded == [PetNamed(name: "Rex", nickname: "Rexy"), PetNamed(name: "Tom", nickname: nil)])
        }
    }

    @Test func `an unknown event type fails with an error naming it`() throws {
        let event = RecordedEvent(
            tenant: TenantID(), seq: 1, stream: try pet(), streamVersion: 1, type: "PetTeleported", schemaVersion: 1,
            data: .object([]), metadataJSON: .object([]), recordedAtText: "2026-01-01T00:00:00.000000Z", prevHash: [], hash: [])
        #expect {
            try Self.registry().decode(event)
        } throws: { error in
            (error as? EventLogError)?.code == .unknownEventType && (error as? EventLogError)?.message.contains("PetTeleported") == true
        }
    }

    @Test func `a version without an upcaster path is a clear error`() {
        var registry = EventTypeRegistry()
        registry.register(PetNamed.self)
        #expect {
            try registry.upcast(type: "PetNamed", schemaVersion: 1, data: .object([]))
        } throws: { error in
            (error as? EventLogError)?.code == .upcastFailed
        }
    }
}

@Suite struct WakeUpTests {
    @Test func `an append wakes readers in the same process`() async throws {
        try await withStore { store, _ in
            let tenant = TenantID()
            let wakeUps = store.signal.subscribe()
            try await store.append(tenant: tenant, stream: try pet(), expected: .any, events: [try named("Rex")])
            var iterator = wakeUps.makeAsyncIterator()
            #expect(await iterator.next() == [tenant])
        }
    }

    @Test func `appends in one process wake readers in another through the relay`() async throws {
        let database = try await TestCluster.shared.database()
        try await database.withAppClient { writerClient in
            try await database.withAppClient { readerClient in
                let writer = EventStore(client: writerClient, signal: AppendSignal(), logger: TestCluster.logger)
                let readerSignal = AppendSignal()
                let remoteWakeUps = readerSignal.subscribe(origins: [.remote])
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask { try await NotificationRelay(client: writerClient, signal: writer.signal, logger: TestCluster.logger).run() }
                    group.addTask { try await NotificationRelay(client: readerClient, signal: readerSignal, logger: TestCluster.logger).run() }
                    try await Task.sleep(for: .milliseconds(300))
                    let tenant = TenantID()
                    try await writer.append(tenant: tenant, stream: try pet(), expected: .any, events: [try named("Rex")])
                    var iterator = remoteWakeUps.makeAsyncIterator()
                    let woken = await iterator.next()
                    #expect(woken == [tenant])
                    group.cancelAll()
                }
            }
        }
    }

    @Test func `notification payloads round-trip and fall back to all tenants when too long`() {
        let tenants = Set((0..<3).map { _ in TenantID() })
        let payload = NotificationRelay.payload(tag: "abc", tenants: tenants)
        #expect(NotificationRelay.parse(payload)?.0 == "abc")
        #expect(NotificationRelay.parse(payload)?.1 == tenants)
        let many = Set((0..<500).map { _ in TenantID() })
        #expect(NotificationRelay.payload(tag: "abc", tenants: many) == "abc:*")
    }
}
