import Database
import Foundation
import PetstoreTesting
import PostgresNIO
import Testing
@testable import EventLog

@Suite struct AppendTests {
    @Test func `appends get gap-free seqs and stream versions and read back as written`() async throws {
        try await withStore { store, _ in
            let tenant = TenantID()
            let rex = try pet(), tom = try pet()
            let first = try await store.append(tenant: tenant, stream: rex, expected: .noStream, events: [try named("Rex"), try named("Rexy")],
                                               metadata: EventMetadata(actor: "user-1", requestID: "req-1"))
            #expect(first.firstSeq == 1 && first.lastSeq == 2 && first.streamVersions == [2])
            let second = try await store.append(tenant: tenant, stream: tom, expected: .noStream, events: [try named("Tom")])
            #expect(second.firstSeq == 3 && second.streamVersions == [1])
            let third = try await store.append(tenant: tenant, stream: rex, expected: .exact(2), events: [try named("Rex II")])
            #expect(third.firstSeq == 4 && third.streamVersions == [3])

            let log = try await store.read(tenant: tenant)
            #expect(log.map(\.seq) == [1, 2, 3, 4])
            #expect(log.map(\.streamVersion) == [1, 2, 1, 3])
            #expect(log[0].metadata == EventMetadata(actor: "user-1", requestID: "req-1"))
            #expect(log[0].prevHash == CanonicalEvent.genesisHash)
            #expect(log[1].prevHash == log[0].hash)
            #expect(log[3].hash == third.headHash)
            var registry = EventTypeRegistry()
            registry.register(PetNamed.self)
            #expect(try registry.decode(log[3]) as? PetNamed == PetNamed(name: "Rex II", nickname: nil))

            let rexEvents = try await store.read(tenant: tenant, stream: rex)
            #expect(rexEvents.map(\.seq) == [1, 2, 4])
            #expect(try await store.read(tenant: tenant, after: 2, limit: 1).map(\.seq) == [3])
        }
    }

    @Test func `a stale expected version is a typed conflict that writes nothing`() async throws {
        try await withStore { store, database in
            let tenant = TenantID()
            let rex = try pet()
            try await store.append(tenant: tenant, stream: rex, expected: .noStream, events: [try named("Rex")])
            for expected in [ExpectedVersion.noStream, .exact(0), .exact(2)] {
                await #expect {
                    try await store.append(tenant: tenant, stream: rex, expected: expected, events: [try named("Late")])
                } throws: { error in
                    (error as? EventLogError)?.code == .wrongExpectedVersion && (error as? EventLogError)?.actualVersion == 1
                }
            }
            #expect(try await store.read(tenant: tenant).count == 1)
            let head = try await scalar(database.superuserURL, "SELECT last_seq FROM event_heads WHERE tenant_id = \(tenant.rawValue)", as: Int64.self)
            #expect(head == 1)
        }
    }

    @Test func `a checked append answers a conflict in a transaction that goes on, and its events are the ones read back`() async throws {
        try await withStore { store, _ in
            let tenant = TenantID()
            let rex = try pet(), tom = try pet()
            try await store.append(tenant: tenant, stream: rex, expected: .noStream, events: [try named("Rex")])
            let recorded = try await store.database.withTenant(tenant) { session in
                let stale = try await store.tryAppend([StreamAppend(stream: tom, expected: .noStream, events: [try named("Tom")]),
                                                       StreamAppend(stream: rex, expected: .exact(3), events: [try named("Late")])], in: session)
                guard case .conflict(let conflict) = stale else {
                    Issue.record("a stale version was appended: \(stale)")
                    return [RecordedEvent]()
                }
                #expect(conflict.code == .wrongExpectedVersion && conflict.actualVersion == 1)
                // No savepoint around it, and the transaction still takes the next append.
                let fresh = try await store.tryAppend([StreamAppend(stream: tom, expected: .noStream, events: [try named("Tom"), try named("Tommy")]),
                                                       StreamAppend(stream: rex, expected: .exact(1), events: [try named("Rex II")])],
                                                      metadata: EventMetadata(actor: "user-1", requestID: "req-2"), in: session)
                guard case .appended(let result, let events) = fresh else {
                    Issue.record("the fresh append was refused: \(fresh)")
                    return []
                }
                #expect(result.firstSeq == 2 && result.lastSeq == 4 && result.streamVersions == [2, 2])
                return events
            }
            let log = try await store.read(tenant: tenant)
            #expect(log.count == 4, "the conflict wrote nothing; the fresh append wrote three events")
            #expect(recorded == Array(log.dropFirst()), "what the append returns is, field for field, what the log reads back")
            #expect(recorded.map(\.streamVersion) == [1, 2, 2] && recorded.first?.prevHash == log.first?.hash)
        }
    }

    @Test func `an append to several streams is all or nothing`() async throws {
        try await withStore { store, _ in
            let tenant = TenantID()
            let rex = try pet(), tom = try pet()
            try await store.append(tenant: tenant, stream: tom, expected: .noStream, events: [try named("Tom")])
            await #expect(throws: EventLogError.self) {
                try await store.append(tenant: tenant, [
                    StreamAppend(stream: rex, expected: .noStream, events: [try named("Rex")]),
                    StreamAppend(stream: tom, expected: .noStream, events: [try named("Tom again")]),
                ])
            }
            #expect(try await store.read(tenant: tenant).count == 1)
            let both = try await store.append(tenant: tenant, [
                StreamAppend(stream: rex, expected: .noStream, events: [try named("Rex")]),
                StreamAppend(stream: tom, expected: .exact(1), events: [try named("Tom II"), try named("Tom III")]),
            ])
            #expect(both.firstSeq == 2 && both.lastSeq == 4 && both.streamVersions == [1, 3])
        }
    }

    @Test func `an aborted append consumes no number`() async throws {
        try await withStore { store, _ in
            let tenant = TenantID()
            try await store.append(tenant: tenant, stream: try pet(), expected: .any, events: [try named("A")])
            struct Abort: Error {}
            await #expect(throws: Abort.self) {
                try await store.database.withTenant(tenant) { session in
                    let result = try await store.append(
                        [StreamAppend(stream: try pet(), expected: .any, events: [try named("B")])], metadata: .init(), in: session)
                    #expect(result.firstSeq == 2)
                    throw Abort()
                }
            }
            let next = try await store.append(tenant: tenant, stream: try pet(), expected: .any, events: [try named("C")])
            #expect(next.firstSeq == 2)
            #expect(try await store.verify(tenant: tenant).valid)
        }
    }

    @Test func `bad input is a typed error and leaves the head untouched`() async throws {
        struct Weight: EventPayload {
            static let eventType = "WeightMeasured"
            static let schemaVersion = 1
            let kilograms: Double
        }
        try await withStore { store, database in
            let tenant = TenantID()
            try await store.append(tenant: tenant, stream: try pet(), expected: .any, events: [try named("Rex")])
            let headBefore = try await scalar(database.superuserURL, "SELECT head_hash FROM event_heads WHERE tenant_id = \(tenant.rawValue)", as: ByteBuffer.self)

            #expect { try NewEvent(Weight(kilograms: .nan)) } throws: { ($0 as? EventLogError)?.code == .invalidEvent }
            let huge = NewEvent(type: "Huge", data: .object(["blob": .string(String(repeating: "x", count: NewEvent.maximumDataSize))]))
            let cases: [(StreamName, [NewEvent], EventLogError.Code)] = [
                (try pet(), [], .emptyAppend),
                (try pet(), [huge], .eventTooLarge),
                (try pet(), [NewEvent(type: "NotAnObject", data: .array([]))], .invalidEvent),
                (try pet(), [NewEvent(type: "Bad Type!", data: .object([]))], .invalidEvent),
                (try pet(), [NewEvent(type: "Nul", data: .object(["name": .string("a\u{0}b")]))], .invalidEvent),
                (try pet(), [NewEvent(type: "Version", schemaVersion: 0, data: .object([]))], .invalidEvent),
            ]
            for (stream, events, code) in cases {
                await #expect {
                    try await store.append(tenant: tenant, stream: stream, expected: .any, events: events)
                } throws: { error in
                    (error as? EventLogError)?.code == code
                }
            }
            #expect(throws: EventLogError.self) { try StreamName(type: "Pet; DROP TABLE events", id: UUID()) }
            #expect(throws: EventLogError.self) { try StreamName(type: "", id: UUID()) }

            #expect(try await store.read(tenant: tenant).count == 1)
            let headAfter = try await scalar(database.superuserURL, "SELECT head_hash FROM event_heads WHERE tenant_id = \(tenant.rawValue)", as: ByteBuffer.self)
            #expect(headBefore == headAfter)
        }
    }

    @Test func `strings that look like SQL are stored as data`() async throws {
        try await withStore { store, _ in
            let tenant = TenantID()
            let hostile = "Robert'); DROP TABLE events;--"
            try await store.append(tenant: tenant, stream: try pet(), expected: .any, events: [try named(hostile)],
                                   metadata: EventMetadata(actor: "' OR 1=1 --"))
            let stored = try await store.read(tenant: tenant)
            #expect(stored.first?.data["name"] == .string(hostile))
            #expect(stored.first?.metadata.actor == "' OR 1=1 --")
        }
    }
}
