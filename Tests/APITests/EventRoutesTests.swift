import API
import Database
import EventLog
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Operations
import PetstoreTesting
import Tenancy
import Testing

@Suite struct EventRoutesTests {
    /// A tenant with a few pets, its admin client and an auditor client.
    func setUp(_ app: TestApp, _ client: some TestClientProtocol, slug: String) async throws -> (admin: TenantClient, auditor: TenantClient) {
        let admin = try await app.tenantClient(client, slug: slug)
        let issued = try await admin.call(.post, "/api/keys", json: #"{"email":"auditor@\#(slug).test","role":"auditor"}"#)
        #expect(issued.status == .created)
        let key = try #require(try admin.object(issued)["api_key"] as? String)
        return (admin, TenantClient(client: admin.client, key: key, slug: slug))
    }

    func lines(_ response: SentResponse) throws -> [[String: Any]] {
        try String(buffer: response.body).split(separator: "\n").map { line in
            try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        }
    }

    @Test(arguments: Placements.all) func `auditors read the log, verify it and see attacks, but never command`(placement: String) async throws {
        try await withApp(.router, placement: placement) { app, client in
            let (admin, auditor) = try await setUp(app, client, slug: "audited")
            _ = try await admin.register("Rex")
            #expect(try await auditor.call(.get, "/api/events").status == .ok)
            #expect(try await auditor.call(.get, "/api/events/verify").status == .ok)
            #expect(try await auditor.call(.get, "/api/security-events").status == .ok)
            #expect(try await auditor.call(.get, "/api/pets").status == .ok)
            for (method, uri, body) in [(HTTPRequest.Method.post, "/api/pets", #"{"name":"X","species":"dog"}"#),
                                        (.put, "/api/config/include_deleted_pets", #"{"value":true}"#),
                                        (.post, "/api/keys", #"{"email":"a@b.c","role":"admin"}"#)] {
                let response = try await auditor.call(method, uri, json: body)
                #expect(response.status == .forbidden, "\(method) \(uri)")
            }
            let issued = try await admin.call(.post, "/api/keys", json: #"{"email":"member@audited.test","role":"member"}"#)
            let member = TenantClient(client: client, key: try #require(try admin.object(issued)["api_key"] as? String), slug: "audited")
            #expect(try await member.call(.get, "/api/events").status == .forbidden, "members do not read the raw log")
        }
    }

    @Test(arguments: Placements.all) func `pages follow the log in order, and filters narrow it`(placement: String) async throws {
        try await withApp(.router, placement: placement) { app, client in
            let (admin, auditor) = try await setUp(app, client, slug: "paged")
            let rex = try await admin.register("Rex")
            _ = try await admin.register("Tom", species: "cat")
            _ = try await admin.call(.patch, "/api/pets/\(rex)", json: #"{"name":"Rexy"}"#)
            let total = try await app.eventCount("paged")

            var seqs: [Int] = []
            var after = 0
            // Bounded: a cursor that stopped moving must fail the test, not spin for good.
            for _ in 0...total {
                let page = try await auditor.call(.get, "/api/events?limit=2&after=\(after)")
                #expect(page.status == .ok)
                let object = try auditor.object(page)
                let items = try #require(object["items"] as? [[String: Any]])
                seqs += items.compactMap { $0["seq"] as? Int }
                guard let next = object["next_after"] as? Int else { break }
                #expect(next > after, "the cursor moves on")
                after = next
            }
            #expect(seqs == Array(1...total), "every event once, in order")

            let registered = try auditor.object(try await auditor.call(.get, "/api/events?type=PetRegistered&limit=1000"))
            let types = (registered["items"] as? [[String: Any]] ?? []).compactMap { $0["type"] as? String }
            #expect(types.count == 3 && Set(types) == ["PetRegistered"], "the sample pet, Rex and Tom")

            let stream = try auditor.object(try await auditor.call(.get, "/api/events?stream=pet-\(rex)"))
            let streamTypes = (stream["items"] as? [[String: Any]] ?? []).compactMap { $0["type"] as? String }
            #expect(streamTypes == ["PetRegistered", "PetRenamed"])

            let future = try auditor.object(try await auditor.call(.get, "/api/events?from=2999-01-01T00:00:00Z"))
            #expect((future["items"] as? [Any])?.isEmpty == true)
            let past = try auditor.object(try await auditor.call(.get, "/api/events?to=2000-01-01T00:00:00Z"))
            #expect((past["items"] as? [Any])?.isEmpty == true)
            let window = try auditor.object(try await auditor.call(.get, "/api/events?from=2000-01-01T00:00:00Z&to=2999-01-01T00:00:00Z&limit=1000"))
            #expect((window["items"] as? [Any])?.count == total)

            for bad in ["from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z", "after=-1", "after=abc", "from=yesterday", "limit=0", "sort=desc"] {
                let response = try await auditor.call(.get, "/api/events?\(bad)")
                #expect(response.status == .badRequest, "\(bad)")
            }
        }
    }

    @Test(arguments: Placements.all) func `NDJSON streams every event with its hashes, each line chained to the one before`(placement: String) async throws {
        try await withApp(.live, placement: placement) { app, client in
            let (admin, auditor) = try await setUp(app, client, slug: "streamed")
            for index in 0..<30 { _ = try await admin.register("Pet \(index)") }
            let total = try await app.eventCount("streamed")
            let response = try await auditor.call(.get, "/api/events", extra: [.accept: "application/x-ndjson"])
            #expect(response.status == .ok)
            #expect(response.headers[.contentType] == "application/x-ndjson")
            let events = try lines(response)
            #expect(events.count == total)
            #expect(events.compactMap { $0["seq"] as? Int } == Array(1...total))
            for (previous, event) in zip(events, events.dropFirst()) {
                #expect(event["prev_hash"] as? String == previous["hash"] as? String)
            }
            let filtered = try lines(try await auditor.call(.get, "/api/events?type=PetRegistered&after=5", extra: [.accept: "application/x-ndjson"]))
            #expect(filtered.allSatisfy { line in line["type"] as? String == "PetRegistered" && (line["seq"] as? Int ?? 0) > 5 })
        }
    }

    @Test(arguments: Placements.all) func `verify says ok with the head, and names the first altered event`(placement: String) async throws {
        try await withApp(.router, placement: placement) { app, client in
            let (admin, auditor) = try await setUp(app, client, slug: "verified")
            for name in ["A", "B", "C"] { _ = try await admin.register(name) }
            let good = try auditor.object(try await auditor.call(.get, "/api/events/verify"))
            let total = try await app.eventCount("verified")
            #expect(good["ok"] as? Bool == true)
            #expect(good["checked"] as? Int == total)
            #expect(good["head_seq"] as? Int == total)
            #expect((good["head_hash"] as? String)?.count == 64)

            let tenant = try #require(try await app.catalog.tenant(slug: "verified"))
            try await app.dataURL(of: "verified").withConnection(logger: TestCluster.logger) { connection in
                try await connection.query("SET session_replication_role = replica", logger: TestCluster.logger).consume()
                try await connection.query("""
                    UPDATE events SET data = jsonb_set(data, '{name}', '"Mallory"') WHERE tenant_id = \(tenant.id.rawValue) AND seq = 4
                    """, logger: TestCluster.logger).consume()
            }
            let bad = try auditor.object(try await auditor.call(.get, "/api/events/verify"))
            #expect(bad["ok"] as? Bool == false)
            #expect(bad["first_bad_seq"] as? Int == 4)
        }
    }

    @Test(arguments: Placements.all) func `a tenant sees the attempts against it, not who made them`(placement: String) async throws {
        try await withApp(.router, placement: placement) { app, client in
            let (_, auditor) = try await setUp(app, client, slug: "targeted")
            let attacker = try await app.tenantClient(client, slug: "prober")
            for _ in 0..<3 {
                #expect(try await send(client, "/api/pets", .get, headers(attacker.key, tenant: "targeted")).status == .notFound)
            }
            // The periodic flush may be writing the first attempt while the others arrive; this one
            // returns once all three are written.
            await app.dependencies.securityLog.flush()
            let items = try auditor.object(try await auditor.call(.get, "/api/security-events"))["items"] as? [[String: Any]] ?? []
            #expect(items.count == 1)
            let item = try #require(items.first)
            #expect(item["attempts"] as? Int == 3)
            #expect(item["route"] as? String == "/api/pets")
            #expect(item["actor_tenant"] == nil && item["actor_key"] == nil, "the wall does not tell tenants about each other")
            let theirs = try attacker.object(try await attacker.call(.get, "/api/security-events"))
            #expect((theirs["items"] as? [Any])?.isEmpty == true, "the prober's own log shows nothing of it")
        }
    }
}
