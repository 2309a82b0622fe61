@testable import API
@testable import Operations
import Database
import EventLog
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import PetstoreTesting
import PostgresNIO
import Tenancy
import Testing

@Suite struct IdempotencyTests {
    static let key = HTTPField.Name("Idempotency-Key")!
    static let replayed = HTTPField.Name("Idempotent-Replayed")!

    @Test(arguments: Placements.all) func `50 concurrent identical keyed POSTs append exactly one event and none gets a 5xx`(placement: String) async throws {
        try await withApp(.live, poolSize: 20, placement: placement) { app, client in
            let tenant = try await app.tenantClient(client, slug: "stampede")
            let before = try await app.events(of: "PetRegistered", tenant: "stampede").count
            let port = try #require(client.port)
            let body = #"{"name":"Once","species":"cat"}"#
            let results = try await withThrowingTaskGroup(of: SentResponse.self) { group in
                for _ in 0..<50 {
                    group.addTask {
                        try await TestClient.withClient(host: "127.0.0.1", port: port) { connection in
                            let response = try await connection.execute(TestClient.Request(
                                "/api/pets", method: .post,
                                headers: [.authorization: "Bearer \(tenant.key)", HTTPField.Name("X-Tenant-ID")!: tenant.slug,
                                          .contentType: "application/json", Self.key: "stampede-1"],
                                body: ByteBuffer(string: body)))
                            return SentResponse(status: response.status, headers: response.headers, body: response.body ?? ByteBuffer())
                        }
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            var fresh = 0, replays = 0, conflicts = 0
            var others: [Int] = []
            var bodies = Set<String>()
            for response in results {
                switch response.status.code {
                case 201:
                    if response.headers[Self.replayed] == "true" { replays += 1 } else { fresh += 1 }
                    bodies.insert(String(buffer: response.body))
                case 409:
                    conflicts += 1
                    #expect(String(buffer: response.body).contains("/problems/idempotency-key-in-use\""))
                    #expect(response.headers[.retryAfter] == "1")
                default:
                    others.append(response.status.code)
                }
            }
            #expect(others.isEmpty, "only 201 and 409, never a 5xx: \(others)")
            #expect(fresh == 1, "exactly one request did the work (replays \(replays), conflicts \(conflicts))")
            #expect(bodies.count == 1, "every replay is the first response")
            #expect(fresh + replays + conflicts == 50)
            #expect(try await app.events(of: "PetRegistered", tenant: "stampede").count == before + 1)
        }
    }

    @Test(arguments: Placements.all) func `a retry replays the stored response; the same key with another body is a 422`(placement: String) async throws {
        try await withApp(.router, placement: placement) { app, client in
            let tenant = try await app.tenantClient(client, slug: "retrier")
            let first = try await tenant.call(.post, "/api/pets", json: #"{"name":"Rex","species":"dog"}"#, extra: [Self.key: "k-1"])
            #expect(first.status == .created)
            #expect(first.headers[Self.replayed] == nil)
            let again = try await tenant.call(.post, "/api/pets", json: #"{"name":"Rex","species":"dog"}"#, extra: [Self.key: "k-1"])
            #expect(again.status == .created)
            #expect(again.headers[Self.replayed] == "true")
            #expect(String(buffer: again.body) == String(buffer: first.body))
            #expect(again.headers[.location] == first.headers[.location])
            #expect(again.headers[.eTag] == first.headers[.eTag])
            #expect(again.headers[HTTPField.Name("X-RateLimit-Limit")!] != nil, "a replay still reports the quota")

            let other = try await tenant.call(.post, "/api/pets", json: #"{"name":"Max","species":"dog"}"#, extra: [Self.key: "k-1"])
            #expect(other.status == .unprocessableContent)
            #expect(String(buffer: other.body).contains("/problems/idempotency-key-reused\""))
            let elsewhere = try await tenant.call(.patch, "/api/pets/\(UUID())", json: #"{"name":"Rex","species":"dog"}"#, extra: [Self.key: "k-1"])
            #expect(elsewhere.status == .unprocessableContent, "another path with the same key")
            #expect(try await app.events(of: "PetRegistered", tenant: "retrier").count == 2, "the sample pet and Rex")
        }
    }

    @Test(arguments: Placements.all) func `the same key from another tenant or another API key is independent`(placement: String) async throws {
        try await withApp(.router, placement: placement) { app, client in
            let one = try await app.tenantClient(client, slug: "tenant-one")
            let two = try await app.tenantClient(client, slug: "tenant-two")
            let body = #"{"name":"Twin","species":"dog"}"#
            let a = try await one.call(.post, "/api/pets", json: body, extra: [Self.key: "shared"])
            let b = try await two.call(.post, "/api/pets", json: body, extra: [Self.key: "shared"])
            #expect(a.status == .created && b.status == .created)
            #expect(b.headers[Self.replayed] == nil)
            #expect(a.headers[.location] != b.headers[.location])

            let issued = try await one.call(.post, "/api/keys", json: #"{"email":"second@example.com","role":"member"}"#)
            let secondKey = try #require(try one.object(issued)["api_key"] as? String)
            let member = TenantClient(client: client, key: secondKey, slug: one.slug)
            let c = try await member.call(.post, "/api/pets", json: body, extra: [Self.key: "shared"])
            #expect(c.status == .created)
            #expect(c.headers[Self.replayed] == nil, "keys are scoped to the API key that sent them")
            #expect(try await app.events(of: "PetRegistered", tenant: "tenant-one").count == 3)
        }
    }

    @Test(arguments: Placements.all) func `a request still running makes a retry a 409`(placement: String) async throws {
        try await withApp(.router, placement: placement) { app, client in
            let tenant = try await app.tenantClient(client, slug: "busy-key")
            let record = try #require(try await app.catalog.tenant(slug: "busy-key"))
            let principal = try #require(try await app.dependencies.authenticator.authenticate(authorization: "Bearer \(tenant.key)"))
            // Hold the key's lock as the first request would while it runs.
            let lock = CommandPipeline.Key(scope: record.id, apiKey: principal.keyID, value: "slow", fingerprint: []).lock
            // Advisory locks belong to a database: the one holding the tenant's data.
            try await app.dataURL(of: "busy-key", owner: true).withConnection(logger: TestCluster.logger) { connection in
                try await connection.query("SELECT pg_advisory_lock(\(lock))", logger: TestCluster.logger).consume()
                let retry = try await tenant.call(.post, "/api/pets", json: #"{"name":"Slow","species":"dog"}"#, extra: [Self.key: "slow"])
                #expect(retry.status == .conflict)
                #expect(String(buffer: retry.body).contains("/problems/idempotency-key-in-use\""))
                try await connection.query("SELECT pg_advisory_unlock(\(lock))", logger: TestCluster.logger).consume()
            }
            let after = try await tenant.call(.post, "/api/pets", json: #"{"name":"Slow","species":"dog"}"#, extra: [Self.key: "slow"])
            #expect(after.status == .created, "the 409 left nothing behind")
        }
    }

    @Test(arguments: Placements.all) func `a failed command stores nothing, so the key can be used again`(placement: String) async throws {
        try await withApp(.router, placement: placement) { app, client in
            let tenant = try await app.tenantClient(client, slug: "fixer")
            let bad = try await tenant.call(.post, "/api/pets", json: #"{"name":"","species":"dog"}"#, extra: [Self.key: "fix-me"])
            #expect(bad.status.code >= 400 && bad.status.code < 500)
            let good = try await tenant.call(.post, "/api/pets", json: #"{"name":"Fixed","species":"dog"}"#, extra: [Self.key: "fix-me"])
            #expect(good.status == .created)
            #expect(good.headers[Self.replayed] == nil)
        }
    }

    @Test(arguments: Placements.all) func `PATCH, DELETE and config PUT are idempotent too`(placement: String) async throws {
        try await withApp(.router, placement: placement) { app, client in
            let tenant = try await app.tenantClient(client, slug: "verbs")
            let id = try await tenant.register("Rex")
            let settingsBefore = try await app.events(of: "ConfigValueSet", tenant: "verbs").count
            for _ in 0..<2 {
                let patch = try await tenant.call(.patch, "/api/pets/\(id)", json: #"{"name":"Rexy"}"#, extra: [Self.key: "p"])
                #expect(patch.status == .ok)
                let put = try await tenant.call(.put, "/api/config/include_deleted_pets", json: #"{"value":true}"#, extra: [Self.key: "c"])
                #expect(put.status == .ok)
                let delete = try await tenant.call(.delete, "/api/pets/\(id)", extra: [Self.key: "d"])
                #expect(delete.status == .noContent)
            }
            #expect(try await app.events(of: "PetRenamed", tenant: "verbs").count == 1)
            #expect(try await app.events(of: "PetRemoved", tenant: "verbs").count == 1)
            #expect(try await app.events(of: "ConfigValueSet", tenant: "verbs").count == settingsBefore + 1)
        }
    }

    @Test(arguments: Placements.all) func `a replayed key issuance does not hand out the secret again`(placement: String) async throws {
        try await withApp(.router, placement: placement) { app, client in
            let tenant = try await app.tenantClient(client, slug: "secrets")
            let body = #"{"email":"new@example.com","role":"member"}"#
            let first = try await tenant.call(.post, "/api/keys", json: body, extra: [Self.key: "issue"])
            #expect(first.status == .created)
            let secret = try #require(try tenant.object(first)["api_key"] as? String)
            let replay = try await tenant.call(.post, "/api/keys", json: body, extra: [Self.key: "issue"])
            #expect(replay.status == .created)
            #expect(replay.headers[Self.replayed] == "true")
            #expect(!String(buffer: replay.body).contains(secret))
            #expect(try tenant.object(replay)["id"] as? String == (try tenant.object(first)["id"] as? String))
            let stored = try await rows(app.database.ownerURL, "SELECT body FROM idempotency_keys", as: ByteBuffer.self)
            #expect(!stored.contains { String(buffer: $0).contains(secret) }, "the secret is not at rest in the table")
        }
    }

    @Test func `keys expire after the retention`() async throws {
        try await withApp(.router, idempotencyRetention: .seconds(1)) { app, client in
            let tenant = try await app.tenantClient(client, slug: "forgetful")
            let first = try await tenant.call(.post, "/api/pets", json: #"{"name":"Old","species":"dog"}"#, extra: [Self.key: "k"])
            #expect(first.status == .created)
            try await Task.sleep(for: .milliseconds(1500))
            let second = try await tenant.call(.post, "/api/pets", json: #"{"name":"New","species":"dog"}"#, extra: [Self.key: "k"])
            #expect(second.status == .created, "an expired key is a new key")
            #expect(second.headers[Self.replayed] == nil)
        }
    }

    @Test(arguments: ["", String(repeating: "k", count: 256), "naïve", "tab\there"])
    func `a malformed Idempotency-Key is a 400 and changes nothing`(value: String) async throws {
        try await withApp(.router) { app, client in
            let tenant = try await app.tenantClient(client, slug: "bad-keys")
            let before = try await app.eventCount("bad-keys")
            var fields = headers(tenant.key, tenant: tenant.slug)
            fields[.contentType] = "application/json"
            fields.append(HTTPField(name: Self.key, value: value))
            let response = try await send(client, "/api/pets", .post, fields, body: ByteBuffer(string: #"{"name":"X","species":"dog"}"#))
            #expect(response.status == .badRequest, "\(value.prefix(10)): \(response.status)")
            #expect(String(buffer: response.body).contains("Idempotency-Key"))
            #expect(try await app.eventCount("bad-keys") == before)
        }
    }

    @Test(arguments: Placements.all) func `a key of 255 characters is accepted`(placement: String) async throws {
        try await withApp(.router, placement: placement) { app, client in
            let tenant = try await app.tenantClient(client, slug: "long-key")
            let response = try await tenant.call(.post, "/api/pets", json: #"{"name":"X","species":"dog"}"#,
                                                 extra: [Self.key: String(repeating: "k", count: 255)])
            #expect(response.status == .created)
        }
    }

    @Test(arguments: Placements.all) func `platform commands take a key too: onboarding replays without the admin key`(placement: String) async throws {
        try await withApp(.router, placement: placement) { app, client in
            let fields: HTTPFields = [.authorization: "Bearer \(app.platformKey)", .contentType: "application/json", Self.key: "onboard-1"]
            let body = ByteBuffer(string: #"{"slug":"keyed-shop","name":"Keyed","plan":"free"}"#)
            let first = try await send(client, "/api/admin/tenants", .post, fields, body: body)
            #expect(first.status == .created)
            let secret = try #require((try JSONSerialization.jsonObject(with: Data(buffer: first.body)) as? [String: Any])?["admin_api_key"] as? String)
            let again = try await send(client, "/api/admin/tenants", .post, fields, body: body)
            #expect(again.status == .created, "not 409 slug-taken: the first answer again")
            #expect(again.headers[Self.replayed] == "true")
            #expect(!String(buffer: again.body).contains(secret))
            #expect(String(buffer: again.body).contains("\"slug\":\"keyed-shop\""))
            let other = try await send(client, "/api/admin/tenants", .post, fields,
                                       body: ByteBuffer(string: #"{"slug":"other-shop","name":"Other","plan":"free"}"#))
            #expect(other.status == .unprocessableContent)
            #expect(try await app.catalog.tenant(slug: "other-shop") == nil)
        }
    }

    /// One keyed command sent twice over real connections; a `Content-Length` that disagrees
    /// with the body makes the client wait for bytes that never come, and time out.
    struct Replay {
        let method: HTTPRequest.Method
        let route: String
        let uri: String
        let tenant: String?
        let body: String?
    }

    @Test(arguments: Placements.all) func `every command route replays over a real connection with a Content-Length that matches its body`(placement: String) async throws {
        try await withApp(.live, placement: placement) { app, client in
            let port = try #require(client.port)
            let admin = try await app.tenantClient(client, slug: "replays")
            let petToChange = try await admin.register("Change")
            let petToRemove = try await admin.register("Remove")
            let spareKey = try await admin.call(.post, "/api/keys", json: #"{"email":"spare@example.com","role":"member"}"#)
            let spareKeyID = try #require(try admin.object(spareKey)["id"] as? String)
            _ = try await admin.call(.post, "/api/keys", json: #"{"email":"leaving@example.com","role":"member"}"#)
            let replays = try #require(try await app.catalog.tenant(slug: "replays"))
            let leavingUser = try await app.dependencies.tenants.state(of: replays.id)?.user(withEmail: "leaving@example.com")
            let leaving = try #require(leavingUser).id.uuidString.lowercased()
            _ = try await app.onboard(client, slug: "replays-platform")
            _ = try await app.onboard(client, slug: "replays-mover", plan: "basic", placement: "shared")

            let cases: [Replay] = [
                .init(method: .post, route: "/api/pets", uri: "/api/pets", tenant: "replays", body: #"{"name":"Once","species":"cat"}"#),
                .init(method: .patch, route: "/api/pets/{id}", uri: "/api/pets/\(petToChange)", tenant: "replays", body: #"{"name":"Changed"}"#),
                .init(method: .delete, route: "/api/pets/{id}", uri: "/api/pets/\(petToRemove)", tenant: "replays", body: nil),
                .init(method: .put, route: "/api/config/{key}", uri: "/api/config/include_deleted_pets", tenant: "replays", body: #"{"value":true}"#),
                .init(method: .delete, route: "/api/config/{key}", uri: "/api/config/include_deleted_pets", tenant: "replays", body: nil),
                .init(method: .post, route: "/api/keys", uri: "/api/keys", tenant: "replays", body: #"{"email":"new@example.com","role":"member"}"#),
                .init(method: .delete, route: "/api/keys/{id}", uri: "/api/keys/\(spareKeyID)", tenant: "replays", body: nil),
                .init(method: .delete, route: "/api/users/{id}", uri: "/api/users/\(leaving)?erase=true", tenant: "replays", body: nil),
                .init(method: .post, route: "/api/admin/tenants", uri: "/api/admin/tenants", tenant: nil,
                      body: #"{"slug":"replayed-shop","name":"Replayed","plan":"free"}"#),
                .init(method: .patch, route: "/api/admin/tenants/{slug}", uri: "/api/admin/tenants/replays-platform", tenant: nil, body: #"{"plan":"basic"}"#),
                .init(method: .post, route: "/api/admin/tenants/{slug}/move", uri: "/api/admin/tenants/replays-mover/move", tenant: nil,
                      body: #"{"to":"schema"}"#),
                .init(method: .post, route: "/api/admin/tenants/{slug}/checkpoints", uri: "/api/admin/tenants/replays-platform/checkpoints",
                      tenant: nil, body: nil),
                .init(method: .delete, route: "/api/admin/tenants/{slug}", uri: "/api/admin/tenants/replays-platform", tenant: nil, body: nil),
                .init(method: .post, route: "/api/admin/servers", uri: "/api/admin/servers", tenant: nil,
                      body: #"{"name":"replayed-server","url":"\#(try await TestCluster.second.serverURL().connectionString)"}"#),
                .init(method: .delete, route: "/api/admin/servers/{name}", uri: "/api/admin/servers/replayed-server", tenant: nil, body: nil),
            ]
            let commandRoutes = Set(app.routes.all.filter { IdempotencyMiddleware.methods.contains($0.method) }
                .map { "\($0.method.rawValue) \($0.path)" })
            #expect(commandRoutes == Set(cases.map { "\($0.method.rawValue) \($0.route)" }), "every command route is covered")

            for (index, replay) in cases.enumerated() {
                var lines = ["\(replay.method.rawValue) \(replay.uri) HTTP/1.1", "Host: localhost", "Idempotency-Key: replay-\(index)"]
                if let tenant = replay.tenant {
                    lines += ["Authorization: Bearer \(admin.key)", "X-Tenant-ID: \(tenant)"]
                } else {
                    lines += ["Authorization: Bearer \(app.platformKey)"]
                }
                let body = Array((replay.body ?? "").utf8)
                if replay.body != nil { lines += ["Content-Type: application/json"] }
                lines += ["Content-Length: \(body.count)"]
                let request = Array((lines.joined(separator: "\r\n") + "\r\n\r\n").utf8) + body
                // A connection of its own each time, as a retry after a lost answer would be.
                let first = try #require(await HTTPProbe.exchange(port: port, request: request))
                let again = try #require(await HTTPProbe.exchange(port: port, request: request))
                let label = "\(replay.method) \(replay.route)"
                #expect((200..<300).contains(first.status), "\(label): \(first.status) \(String(decoding: first.body, as: UTF8.self))")
                #expect(again.status == first.status, "\(label)")
                #expect(again.header("Idempotent-Replayed") == ["true"], "\(label)")
                for answer in [first, again] {
                    let complete = answer.complete
                    #expect(complete, "\(label): Content-Length \(answer.header("Content-Length")) for a body of \(answer.body.count) bytes")
                    #expect(answer.header("Content-Length").count <= 1, "\(label): one Content-Length")
                }
            }
        }
    }
}
