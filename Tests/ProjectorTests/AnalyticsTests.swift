import Database
import Domain
import Foundation
import Operations
import PetstoreTesting
import PostgresNIO
import Projectors
import Testing
@testable import EventLog

/// The analytics counting rules, without a database.
@Suite struct AnalyticsFoldTests {
    let tenant = TenantID()
    let at = Date(timeIntervalSince1970: 1_795_000_000)

    /// Events as one append writes them: contiguous seqs, one recorded_at.
    func append(_ seq: inout Int64, at time: String, _ items: [(StreamName, NewEvent)]) -> [RecordedEvent] {
        items.map { stream, event in
            seq += 1
            return RecordedEvent(tenant: tenant, seq: seq, stream: stream, streamVersion: 1, type: event.type, schemaVersion: event.schemaVersion,
                                 data: event.data, metadataJSON: .object([]), recordedAtText: time, prevHash: [], hash: [])
        }
    }

    func pet(_ id: UUID) throws -> StreamName { try StreamName(type: PetEventCoding.streamType, id: id) }

    func registered(_ id: UUID, _ species: String) throws -> NewEvent {
        try PetEventCoding.encode(.registered(PetRegistered(petID: id, name: "P", species: species, breed: nil, microchipID: nil, at: at)))
    }

    @Test func `an append is one command whatever its events; security records are events but not commands`() throws {
        var seq: Int64 = 0
        let rex = UUID(), tom = UUID()
        var events = append(&seq, at: "2026-11-28T23:59:59.999999Z", [(try pet(rex), try registered(rex, "dog")), (try pet(tom), try registered(tom, "cat"))])
        events += append(&seq, at: "2026-11-29T00:00:00.000001Z", [(try pet(rex), try PetEventCoding.encode(.renamed(PetRenamed(name: "R", at: at))))])
        events += append(&seq, at: "2026-11-29T00:00:00.000002Z", [(try StreamName(type: "security", id: tenant.rawValue), NewEvent(type: "CrossTenantAccessAttempted", data: .object([])))])
        var fold = AnalyticsFold(lastAppend: nil)
        try fold.fold(events)
        #expect(fold.days["2026-11-28"] == AnalyticsFold.Day(commands: 1, events: 2))
        #expect(fold.days["2026-11-29"] == AnalyticsFold.Day(commands: 1, events: 2))
        #expect(fold.lastAppend == "2026-11-29T00:00:00.000002Z")
    }

    @Test func `an append cut in two by a batch boundary is still one command`() throws {
        var seq: Int64 = 0
        let a = UUID(), b = UUID(), c = UUID()
        let events = append(&seq, at: "2026-11-29T10:00:00.000000Z", [(try pet(a), try registered(a, "dog")), (try pet(b), try registered(b, "dog")), (try pet(c), try registered(c, "dog"))])
        var first = AnalyticsFold(lastAppend: nil)
        try first.fold(Array(events.prefix(2)))
        var second = AnalyticsFold(lastAppend: first.lastAppend)
        try second.fold(Array(events.dropFirst(2)))
        #expect(first.days["2026-11-29"] == AnalyticsFold.Day(commands: 1, events: 2))
        #expect(second.days["2026-11-29"] == AnalyticsFold.Day(commands: 0, events: 1))
    }

    @Test func `pets move between species and between active and removed as their events say`() throws {
        var seq: Int64 = 0
        let rex = UUID(), tom = UUID()
        var events = append(&seq, at: "2026-11-29T10:00:00.000001Z", [(try pet(rex), try registered(rex, "dog"))])
        events += append(&seq, at: "2026-11-29T10:00:00.000002Z", [(try pet(tom), try registered(tom, "dog"))])
        events += append(&seq, at: "2026-11-29T10:00:00.000003Z", [(try pet(rex), try PetEventCoding.encode(.detailsChanged(PetDetailsChanged(species: "wolf", breed: nil, microchipID: nil, at: at))))])
        events += append(&seq, at: "2026-11-29T10:00:00.000004Z", [(try pet(tom), try PetEventCoding.encode(.removed(PetRemoved(at: at))))])
        var fold = AnalyticsFold(lastAppend: nil)
        try fold.fold(events)
        #expect(fold.species["dog"] == AnalyticsFold.Count(active: 0, removed: 1))
        #expect(fold.species["wolf"] == AnalyticsFold.Count(active: 1, removed: 0))
        #expect(fold.pets[rex] == AnalyticsFold.Pet(species: "wolf", removed: false))
        #expect(fold.pets[tom] == AnalyticsFold.Pet(species: "dog", removed: true))

        // A later batch knows the pets only from what was stored: it must load them first.
        var later: [RecordedEvent] = []
        later += append(&seq, at: "2026-11-29T10:00:00.000005Z", [(try pet(tom), try PetEventCoding.encode(.restored(PetRestored(at: at))))])
        #expect(AnalyticsFold.petsToLoad(later) == [tom])
        var next = AnalyticsFold(lastAppend: fold.lastAppend, pets: [tom: AnalyticsFold.Pet(species: "dog", removed: true)])
        try next.fold(later)
        #expect(next.species["dog"] == AnalyticsFold.Count(active: 1, removed: -1))
        #expect(next.changedPets == [tom])
    }

    @Test func `a registration in the same batch needs no load`() throws {
        var seq: Int64 = 0
        let rex = UUID()
        var events = append(&seq, at: "2026-11-29T10:00:00.000001Z", [(try pet(rex), try registered(rex, "dog"))])
        events += append(&seq, at: "2026-11-29T10:00:00.000002Z", [(try pet(rex), try PetEventCoding.encode(.removed(PetRemoved(at: at))))])
        #expect(AnalyticsFold.petsToLoad(events).isEmpty)
    }
}

/// The analytics projection against a real database.
@Suite struct AnalyticsProjectionTests {
    let logger = TestCluster.logger

    func registration(_ species: String) throws -> StreamAppend {
        let id = UUID()
        let event = try PetEventCoding.encode(.registered(PetRegistered(petID: id, name: "P", species: species, breed: nil, microchipID: nil, at: Date())))
        return StreamAppend(stream: try StreamName(type: PetEventCoding.streamType, id: id), expected: .noStream, events: [event])
    }

    @Test func `a tenant whose commit lands after other tenants were counted is counted when it lands`() async throws {
        let database = try await TestCluster.shared.database()
        try await database.withAppClient { client in
            let store = EventStore(client: client, logger: logger)
            let runtime = ProjectionRuntime(client: client, store: store, projectors: [AnalyticsProjector()], logger: logger)
            let late = TenantID(), early = TenantID()
            _ = try await store.append(tenant: late, [try registration("dog")], metadata: .init())
            try await store.database.withTenant(late) { holder in
                // Two pets in one append: one command, two events, held open.
                _ = try await store.append([try registration("cat"), try registration("cat")], metadata: .init(), in: holder)
                for _ in 0..<3 { _ = try await store.append(tenant: early, [try registration("dog")], metadata: .init()) }
                try await runtime.catchUpAll()
                let midway = try await rows(database.superuserURL, """
                    SELECT tenant_id, commands, events FROM public.analytics_daily ORDER BY commands
                    """, as: (UUID, Int64, Int64).self)
                #expect(midway.map(\.0) == [late.rawValue, early.rawValue])
                #expect(midway.map(\.1) == [1, 3] && midway.map(\.2) == [1, 3])
            }
            try await runtime.catchUpAll()
            let counted = try await rows(database.superuserURL, """
                SELECT d.commands, d.events, s.active FROM public.analytics_daily d
                  JOIN public.analytics_species s ON s.tenant_id = d.tenant_id AND s.species = 'cat'
                 WHERE d.tenant_id = \(late.rawValue)
                """, as: (Int64, Int64, Int64).self)
            #expect(counted.count == 1)
            #expect(counted.first.map { [$0.0, $0.1, $0.2] } == [2, 3, 2])
        }
    }
}
