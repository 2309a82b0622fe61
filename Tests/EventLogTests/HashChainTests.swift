import Database
import Foundation
import PetstoreTesting
import PostgresNIO
import Testing
@testable import EventLog

@Suite struct HashChainTests {
    /// A tenant with ten events over two streams.
    func seeded(_ store: EventStore) async throws -> TenantID {
        let tenant = TenantID()
        let streams = [try pet(), try pet()]
        for index in 0..<10 {
            try await store.append(tenant: tenant, stream: streams[index % 2], expected: .any,
                                   events: [try named("Pet \(index)")], metadata: EventMetadata(actor: "user-\(index)"))
        }
        #expect(try await store.verify(tenant: tenant).valid)
        return tenant
    }

    @Test func `an intact log verifies and reports its head`() async throws {
        try await withStore { store, _ in
            let tenant = try await seeded(store)
            let verification = try await store.verify(tenant: tenant)
            #expect(verification.valid && verification.checked == 10 && verification.headSeq == 10 && verification.firstBadSeq == nil)
            #expect(verification.headHash == (try await store.read(tenant: tenant)).last?.hash)
            let empty = try await store.verify(tenant: TenantID())
            #expect(empty.valid && empty.checked == 0)
        }
    }

    @Test(arguments: [
        ("data", "UPDATE events SET data = jsonb_set(data, '{name}', '\"Mallory\"') WHERE seq = 4"),
        ("metadata", "UPDATE events SET metadata = '{\"actor\":\"someone-else\"}' WHERE seq = 4"),
        ("time", "UPDATE events SET recorded_at = recorded_at - interval '1 microsecond' WHERE seq = 4"),
        ("type", "UPDATE events SET event_type = 'PetRenamed' WHERE seq = 4"),
        ("stream version", "UPDATE events SET stream_version = stream_version + 100 WHERE seq = 4"),
        ("schema version", "UPDATE events SET schema_version = 9 WHERE seq = 4"),
    ])
    func `a changed field is reported at its seq`(field: String, sql: String) async throws {
        try await withStore { store, database in
            let tenant = try await seeded(store)
            try await tamper(database, sql.replacingOccurrences(of: "WHERE", with: "WHERE tenant_id = '\(tenant)' AND"))
            let verification = try await store.verify(tenant: tenant)
            #expect(!verification.valid, "changing \(field) went unnoticed")
            #expect(verification.firstBadSeq == 4)
        }
    }

    @Test func `a deleted middle row is reported at its seq`() async throws {
        try await withStore { store, database in
            let tenant = try await seeded(store)
            try await tamper(database, "DELETE FROM events WHERE tenant_id = '\(tenant)' AND seq = 6")
            let verification = try await store.verify(tenant: tenant)
            #expect(!verification.valid)
            #expect(verification.firstBadSeq == 6)
        }
    }

    @Test func `two swapped rows are reported at the first of them`() async throws {
        try await withStore { store, database in
            let tenant = try await seeded(store)
            // Swap the contents of seq 3 and 7, keeping each seq in place, hashes and all.
            try await tamper(database, """
                WITH a AS (SELECT * FROM events WHERE tenant_id = '\(tenant)' AND seq = 3),
                     b AS (SELECT * FROM events WHERE tenant_id = '\(tenant)' AND seq = 7)
                UPDATE events e SET data = x.data, metadata = x.metadata, prev_hash = x.prev_hash, hash = x.hash
                  FROM (SELECT 3 AS seq, b.data, b.metadata, b.prev_hash, b.hash FROM b
                        UNION ALL SELECT 7, a.data, a.metadata, a.prev_hash, a.hash FROM a) x
                 WHERE e.tenant_id = '\(tenant)' AND e.seq = x.seq
                """)
            let verification = try await store.verify(tenant: tenant)
            #expect(!verification.valid)
            #expect(verification.firstBadSeq == 3)
        }
    }

    @Test func `a cut tail is caught by the head row`() async throws {
        try await withStore { store, database in
            let tenant = try await seeded(store)
            try await tamper(database, "DELETE FROM events WHERE tenant_id = '\(tenant)' AND seq > 8")
            let verification = try await store.verify(tenant: tenant)
            #expect(!verification.valid)
            #expect(verification.firstBadSeq == 9)
        }
    }

    @Test func `an event copied into another tenant's log does not verify there`() async throws {
        try await withStore { store, database in
            let victim = try await seeded(store)
            let other = TenantID()
            try await store.append(tenant: other, stream: try pet(), expected: .any, events: [try named("Mine")])
            // Replace the other tenant's only event with the victim's first, hashes included.
            try await tamper(database, """
                UPDATE events e SET data = v.data, metadata = v.metadata, recorded_at = v.recorded_at, hash = v.hash
                  FROM events v WHERE v.tenant_id = '\(victim)' AND v.seq = 1 AND e.tenant_id = '\(other)' AND e.seq = 1
                """)
            let verification = try await store.verify(tenant: other)
            #expect(!verification.valid)
            #expect(verification.firstBadSeq == 1)
        }
    }
}
