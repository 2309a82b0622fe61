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

/// A tenant's client: its key and slug, and JSON helpers.
struct TenantClient: Sendable {
    let client: any TestClientProtocol
    let key: String
    let slug: String

    func call(_ method: HTTPRequest.Method, _ uri: String, json: String? = nil, extra: HTTPFields = [:]) async throws -> SentResponse {
        var fields = headers(key, tenant: slug)
        if json != nil { fields[.contentType] = "application/json" }
        for field in extra { fields[field.name] = field.value }
        return try await send(client, uri, method, fields, body: json.map { ByteBuffer(string: $0) })
    }

    func object(_ response: SentResponse) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any], "\(String(buffer: response.body))")
    }

    /// Registers a pet and returns its id.
    func register(_ name: String, species: String = "dog") async throws -> String {
        let response = try await call(.post, "/api/pets", json: #"{"name":"\#(name)","species":"\#(species)"}"#)
        #expect(response.status == .created, "\(String(buffer: response.body))")
        return try #require(try object(response)["id"] as? String)
    }

    func listIDs(_ query: String = "") async throws -> [String] {
        let response = try await call(.get, "/api/pets" + query)
        #expect(response.status == .ok, "\(String(buffer: response.body))")
        return (try object(response)["items"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? String }
    }
}

extension TestApp {
    func tenantClient(_ client: any TestClientProtocol, slug: String) async throws -> TenantClient {
        TenantClient(client: client, key: try await onboard(client, slug: slug), slug: slug)
    }

    func eventCount(_ slug: String) async throws -> Int {
        guard let tenant = try await catalog.tenant(slug: slug) else { return 0 }
        return try await store.read(tenant: tenant.id, limit: 100_000).count
    }
}

@Suite struct PetsTests {
    @Test(arguments: Placements.all) func `a created pet answers 201 with Location and ETag and is readable at once`(placement: String) async throws {
        try await withApp(.router, placement: placement) { app, client in
            let tenant = try await app.tenantClient(client, slug: "pet-shop")
            let created = try await tenant.call(.post, "/api/pets", json: #"{"name":"Rex","species":"dog","breed":"Boxer","microchip_id":"123456789012"}"#)
            #expect(created.status == .created)
            let body = try tenant.object(created)
            let id = try #require(body["id"] as? String)
            #expect(created.headers[.location] == "/api/pets/\(id)")
            #expect(created.headers[.eTag] == "\"1\"")
            #expect(body["name"] as? String == "Rex" && body["breed"] as? String == "Boxer" && body["deleted"] as? Bool == false)
            #expect(body["version"] as? Int == 1 && body["created_at"] as? String != nil && body["microchip_id"] as? String == "123456789012")

            let read = try await tenant.call(.get, "/api/pets/\(id)")
            #expect(read.status == .ok)
            #expect(try tenant.object(read)["name"] as? String == "Rex", "read-your-writes: the read model already has it")
            #expect(try await tenant.listIDs().contains(id))
        }
    }

    @Test(arguments: Placements.all) func `microchip_registered_at follows the microchip number, in the read model and at a past time alike`(placement: String) async throws {
        try await withApp(.router, placement: placement) { app, client in
            let tenant = try await app.tenantClient(client, slug: "chip-shop")
            func pet(_ id: String, asOf: String? = nil) async throws -> [String: Any] {
                try tenant.object(try await tenant.call(.get, "/api/pets/\(id)" + (asOf.map { "?as_of=\($0)" } ?? "")))
            }
            let chipped = try tenant.object(try await tenant.call(.post, "/api/pets", json: #"{"name":"Rex","species":"dog","microchip_id":"123456789"}"#))
            let id = try #require(chipped["id"] as? String)
            let registered = try #require(chipped["microchip_registered_at"] as? String)
            #expect(registered == chipped["created_at"] as? String)
            let plain = try tenant.object(try await tenant.call(.post, "/api/pets", json: #"{"name":"Tom","species":"cat"}"#))
            #expect(plain["microchip_registered_at"] is NSNull, "no chip, no time")
            #expect(try await pet(try #require(plain["id"] as? String))["microchip_registered_at"] is NSNull)

            try await Task.sleep(for: .milliseconds(5))
            let renamed = try tenant.object(try await tenant.call(.patch, "/api/pets/\(id)", json: #"{"name":"Max","breed":"Boxer"}"#))
            #expect(renamed["microchip_registered_at"] as? String == registered, "other changes keep it")
            let rechipped = try tenant.object(try await tenant.call(.patch, "/api/pets/\(id)", json: #"{"microchip_id":"987654321"}"#))
            let moved = try #require(rechipped["microchip_registered_at"] as? String)
            #expect(moved == rechipped["updated_at"] as? String && moved != registered, "a new number is registered when it is set")
            #expect(try await pet(id)["microchip_registered_at"] as? String == moved, "the read model agrees")
            #expect(try await pet(id, asOf: try #require(renamed["updated_at"] as? String))["microchip_registered_at"] as? String == registered,
                    "folded from the log at a past time, by the same rule")
            let cleared = try tenant.object(try await tenant.call(.patch, "/api/pets/\(id)", json: #"{"microchip_id":null}"#))
            #expect(cleared["microchip_registered_at"] is NSNull)
            #expect(try await pet(id)["microchip_registered_at"] is NSNull)

            // A rebuild from the log derives the same values.
            let before = try await tenant.call(.get, "/api/pets?limit=100").body
            try await app.dependencies.runtime.rebuild("pets", tenant: try #require(try await app.catalog.tenant(slug: "chip-shop")).id)
            #expect(try await tenant.call(.get, "/api/pets?limit=100").body == before)
        }
    }

    @Test(arguments: Placements.all) func `the list filters by species and its cursor neither skips nor repeats while pets are added`(placement: String) async throws {
        try await withApp(.router, placement: placement) { app, client in
            let tenant = try await app.tenantClient(client, slug: "pager")
            for index in 0..<7 { _ = try await tenant.register("Dog \(index)") }
            for index in 0..<3 { _ = try await tenant.register("Cat \(index)", species: "cat") }
            let expected = try await tenant.listIDs("?species=dog&limit=100")
            #expect(expected.count == 8, "the sample pet and seven dogs")
            #expect(try await tenant.listIDs("?species=cat&limit=100").count == 3)

            var seen: [String] = []
            var cursor: String?
            var added: [String] = []
            var pages = 0
            repeat {
                pages += 1
                try #require(pages <= 10, "ten dogs take four pages of three; the cursor must not go round")
                let response = try await tenant.call(.get, "/api/pets?species=dog&limit=3" + (cursor.map { "&cursor=\($0)" } ?? ""))
                let page = try tenant.object(response)
                seen += (page["items"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? String }
                cursor = page["next_cursor"] as? String
                // Someone registers a dog between pages.
                if added.count < 2 { added.append(try await tenant.register("Latecomer \(added.count)")) }
            } while cursor != nil
            #expect(Set(seen).count == seen.count, "no repeats")
            #expect(seen.starts(with: expected), "nothing that existed was skipped, in registration order")
            #expect(Set(added).isSubset(of: Set(seen)), "pets added while paging appear at the end")
        }
    }

    @Test(arguments: Placements.all) func `a page of the list is served again only while nothing it shows has changed, whoever changes it`(placement: String) async throws {
        try await withApp(.router, placement: placement) { app, client in
            let pages = app.dependencies.petPages
            let tenant = try await app.tenantClient(client, slug: "held-pages")
            let other = try await app.tenantClient(client, slug: "held-pages-other")
            let rex = try await tenant.register("Rex")
            let first = try await tenant.call(.get, "/api/pets?limit=50")
            let before = pages.counts
            let again = try await tenant.call(.get, "/api/pets?limit=50")
            #expect(pages.counts.hits == before.hits + 1, "the second list is the page held")
            #expect(again.body == first.body)
            #expect(!(try await other.listIDs("?limit=50")).contains(rex), "another tenant's same query is a page of its own")

            let renamed = try await tenant.call(.patch, "/api/pets/\(rex)", json: #"{"name":"Rexy"}"#)
            #expect(renamed.status == .ok)
            let names = (try tenant.object(try await tenant.call(.get, "/api/pets?limit=50"))["items"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }
            #expect(names.contains("Rexy") && !names.contains("Rex"))
            #expect(try await tenant.call(.delete, "/api/pets/\(rex)").status == .noContent)
            #expect(!(try await tenant.listIDs("?limit=50")).contains(rex))
            // A setting the list reads, changed by a command on another stream.
            #expect(try await tenant.call(.put, "/api/config/include_deleted_pets", json: #"{"value":true}"#).status == .ok)
            #expect(try await tenant.listIDs("?limit=50").contains(rex))

            // Appended without this server's inline projection and projected by the background
            // pass, as another server's command is here.
            let handle = app.catalog.handle(for: try #require(try await app.catalog.tenant(slug: "held-pages")))
            let listed = try await tenant.listIDs("?limit=50")
            let late = UUID.random()
            try await handle.withTenant { session in
                _ = try await PetCommands.runner(store: handle.store).run(id: late, metadata: EventMetadata(), in: session) { _ in
                    .register(id: late, name: "Late", species: "cat", breed: nil, microchipID: nil, at: Date())
                }
            }
            try await app.dependencies.runtime.catchUp(tenant: handle.tenant.id)
            let after = try await tenant.listIDs("?limit=50")
            #expect(after == listed + [late.uuidString.lowercased()], "the page held was not served past the background pass")
            #expect(pages.bytes > 0 && pages.bytes <= pages.budget)
        }
    }

    @Test(arguments: Placements.all) func `a stale If-Match is 412 and a fresh one applies`(placement: String) async throws {
        try await withApp(.router, placement: placement) { app, client in
            let tenant = try await app.tenantClient(client, slug: "matcher")
            let id = try await tenant.register("Rex")
            let renamed = try await tenant.call(.patch, "/api/pets/\(id)", json: #"{"name":"Rexy"}"#, extra: [.ifMatch: "\"1\""])
            #expect(renamed.status == .ok && renamed.headers[.eTag] == "\"2\"")
            let stale = try await tenant.call(.patch, "/api/pets/\(id)", json: #"{"name":"Rexo"}"#, extra: [.ifMatch: "\"1\""])
            #expect(stale.status == .preconditionFailed)
            #expect(String(buffer: stale.body).contains("precondition-failed"))
            #expect(try tenant.object(try await tenant.call(.get, "/api/pets/\(id)"))["name"] as? String == "Rexy")
            let cleared = try await tenant.call(.patch, "/api/pets/\(id)", json: #"{"breed":null,"species":"wolf"}"#)
            #expect(try tenant.object(cleared)["species"] as? String == "wolf")
            let same = try await tenant.call(.patch, "/api/pets/\(id)", json: #"{"name":"Rexy"}"#)
            #expect(try tenant.object(same)["version"] as? Int == 3, "renaming to the same name is a no-op")
        }
    }

    @Test(arguments: Placements.all) func `a removed pet disappears, and include_deleted_pets brings it back at once`(placement: String) async throws {
        try await withApp(.router, placement: placement) { app, client in
            let tenant = try await app.tenantClient(client, slug: "remover")
            let id = try await tenant.register("Ghost")
            #expect(try await tenant.call(.delete, "/api/pets/\(id)").status == .noContent)
            #expect(try await tenant.call(.get, "/api/pets/\(id)").status == .notFound)
            #expect(!(try await tenant.listIDs()).contains(id))
            #expect(try await tenant.call(.delete, "/api/pets/\(id)").status == .noContent, "DELETE is idempotent")
            #expect(try await tenant.call(.patch, "/api/pets/\(id)", json: #"{"name":"Boo"}"#).status == .notFound, "a removed pet takes no changes")

            let set = try await tenant.call(.put, "/api/config/include_deleted_pets", json: #"{"value":true}"#)
            #expect(set.status == .ok)
            #expect(try await tenant.listIDs().contains(id))
            let shown = try await tenant.call(.get, "/api/pets/\(id)")
            #expect(try tenant.object(shown)["deleted"] as? Bool == true)

            #expect(try await tenant.call(.delete, "/api/config/include_deleted_pets").status == .noContent)
            #expect(!(try await tenant.listIDs()).contains(id), "back to the default: hidden")
            let wrongType = try await tenant.call(.put, "/api/config/include_deleted_pets", json: #"{"value":"yes"}"#)
            #expect(wrongType.status == .unprocessableContent)
        }
    }

    @Test(arguments: Placements.all) func `history lists a pet's events and as_of answers the state of that moment`(placement: String) async throws {
        try await withApp(.router, placement: placement) { app, client in
            let tenant = try await app.tenantClient(client, slug: "historian")
            let id = try await tenant.register("Young")
            try await Task.sleep(for: .milliseconds(30))
            let between = Timestamps.format(Date())
            try await Task.sleep(for: .milliseconds(30))
            _ = try await tenant.call(.patch, "/api/pets/\(id)", json: #"{"name":"Old"}"#)

            let history = try tenant.object(try await tenant.call(.get, "/api/pets/\(id)/history"))
            let items = history["items"] as? [[String: Any]] ?? []
            #expect(items.compactMap { $0["type"] as? String } == ["PetRegistered", "PetRenamed"])
            #expect((items.first?["metadata"] as? [String: Any])?["actor"] as? String != nil)

            let then = try await tenant.call(.get, "/api/pets/\(id)?as_of=\(between)")
            #expect(try tenant.object(then)["name"] as? String == "Young")
            let before = try await tenant.call(.get, "/api/pets/\(id)?as_of=2000-01-01T00:00:00Z")
            #expect(before.status == .notFound, "it did not exist yet")
        }
    }

    @Test(arguments: Placements.all) func `tenant B's pet asked for by tenant A is the same 404 as a random id`(placement: String) async throws {
        try await withApp(.router, placement: placement) { app, client in
            let a = try await app.tenantClient(client, slug: "tenant-one")
            let b = try await app.tenantClient(client, slug: "tenant-two")
            let theirs = try await b.register("Private")
            for (method, suffix, json) in [(HTTPRequest.Method.get, "", nil), (.patch, "", #"{"name":"Mine"}"#), (.delete, "", nil), (.get, "/history", nil)] as [(HTTPRequest.Method, String, String?)] {
                let foreign = Comparable404(try await a.call(method, "/api/pets/\(theirs)\(suffix)", json: json))
                let random = Comparable404(try await a.call(method, "/api/pets/\(UUID().uuidString.lowercased())\(suffix)", json: json))
                #expect(foreign.status == 404)
                #expect(foreign == random, "\(method) \(suffix)")
            }
            #expect(try b.object(try await b.call(.get, "/api/pets/\(theirs)"))["name"] as? String == "Private", "untouched")
        }
    }

    @Test(arguments: Placements.all) func `bad input gets a clear problem and appends nothing`(placement: String) async throws {
        try await withApp(.router, placement: placement) { app, client in
            let tenant = try await app.tenantClient(client, slug: "strict")
            let id = try await tenant.register("Rex")
            let before = try await app.eventCount("strict")
            let huge = #"{"name":"\#(String(repeating: "x", count: 70_000))","species":"dog"}"#
            let cases: [(HTTPRequest.Method, String, String?, HTTPFields, HTTPResponse.Status)] = [
                (.post, "/api/pets", #"{"name":"Rex""#, [:], .badRequest),
                (.post, "/api/pets", #"[{"name":"Rex","species":"dog"}]"#, [:], .badRequest),
                (.post, "/api/pets", #"{"name":42,"species":"dog"}"#, [:], .badRequest),
                (.post, "/api/pets", #"{"name":"Rex","species":"dog","owner":"me"}"#, [:], .badRequest),
                (.post, "/api/pets", #"{"name":"","species":"dog"}"#, [:], .unprocessableContent),
                (.post, "/api/pets", #"{"name":"Rex","species":"dog","microchip_id":"12ab"}"#, [:], .unprocessableContent),
                (.post, "/api/pets", #"{"name":"Robert'); DROP TABLE pets;--","species":"dog","id":"not-a-uuid"}"#, [:], .badRequest),
                (.post, "/api/pets", huge, [:], .contentTooLarge),
                (.post, "/api/pets", #"{"id":"\#(id)","name":"Twin","species":"dog"}"#, [:], .conflict),
                (.patch, "/api/pets/\(id)", #"{"name":"X"}"#, [.ifMatch: "garbage"], .badRequest),
                (.patch, "/api/pets/\(id)", #"{"name":null}"#, [:], .badRequest),
                (.get, "/api/pets/not-a-uuid", nil, [:], .notFound),
                (.get, "/api/pets?limit=-1", nil, [:], .badRequest),
                (.get, "/api/pets?limit=100000", nil, [:], .badRequest),
                (.get, "/api/pets?cursor=garbage!", nil, [:], .badRequest),
                (.get, "/api/pets?colour=red", nil, [:], .badRequest),
                (.get, "/api/pets?species=do%00g", nil, [:], .badRequest),
                (.get, "/api/pets?species=do%09g", nil, [:], .badRequest),
                (.get, "/api/pets?species=", nil, [:], .badRequest),
                (.get, "/api/pets/\(id)?as_of=yesterday", nil, [:], .badRequest),
                (.get, "/api/pets/\(id)?as_of=2999-01-01T00:00:00Z", nil, [:], .badRequest),
                (.put, "/api/config/Bad-Key", #"{"value":1}"#, [:], .unprocessableContent),
                (.put, "/api/config/theme", #"{"colour":"red"}"#, [:], .badRequest),
            ]
            for (method, uri, json, extra, status) in cases {
                let response = try await tenant.call(method, uri, json: json, extra: extra)
                #expect(response.status == status, "\(method) \(uri) \(json?.prefix(60) ?? ""): \(String(buffer: response.body).prefix(200))")
                #expect(response.headers[.contentType] == "application/problem+json", "\(method) \(uri)")
            }
            var invalidUTF8 = ByteBuffer(string: #"{"name":""#)
            invalidUTF8.writeBytes([0xC3, 0x28])
            invalidUTF8.writeString(#"","species":"dog"}"#)
            let utf8 = try await send(client, "/api/pets", .post, headers(tenant.key, tenant: tenant.slug).merging([.contentType: "application/json"]), body: invalidUTF8)
            #expect(utf8.status == .badRequest)
            #expect(try await app.eventCount("strict") == before, "nothing was appended")
        }
    }

    @Test(arguments: Placements.all) func `an auditor reads but never commands`(placement: String) async throws {
        try await withApp(.router, placement: placement) { app, client in
            let admin = try await app.tenantClient(client, slug: "audited")
            let issued = try await admin.call(.post, "/api/keys", json: #"{"email":"eye@audited.test","role":"auditor"}"#)
            let auditor = TenantClient(client: client, key: try #require(try admin.object(issued)["api_key"] as? String), slug: "audited")
            #expect(try await auditor.call(.get, "/api/pets").status == .ok)
            #expect(try await auditor.call(.get, "/api/config").status == .ok)
            #expect(try await auditor.call(.post, "/api/pets", json: #"{"name":"Rex","species":"dog"}"#).status == .forbidden)
            #expect(try await auditor.call(.put, "/api/config/theme", json: #"{"value":"dark"}"#).status == .forbidden)
        }
    }
}

@Suite struct ProjectionAdminTests {
    @Test(arguments: Placements.all) func `the platform sees each projection's progress and lag`(placement: String) async throws {
        try await withApp(.router, placement: placement) { app, client in
            let tenant = try await app.tenantClient(client, slug: "lagging")
            for index in 0..<5 { _ = try await tenant.register("Pet \(index)") }
            let response = try await send(client, "/api/admin/projections", .get, headers(app.platformKey))
            #expect(response.status == .ok)
            let items = try #require(try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: [[String: Any]]])["items"] ?? []
            let pets = try #require(items.first { $0["name"] as? String == "pets" })
            #expect(pets["state"] as? String == "active" && pets["lag_events"] as? Int == 0)
            #expect((pets["lag_samples"] as? Int ?? 0) >= 5)
            let p50 = try #require(pets["lag_ms_p50"] as? Double), p99 = try #require(pets["lag_ms_p99"] as? Double)
            #expect(p50 >= 0 && p99 >= p50 && p99 < 60_000)
            #expect(try await send(client, "/api/admin/projections", .get, headers(tenant.key)).status == .forbidden)
        }
    }
}
