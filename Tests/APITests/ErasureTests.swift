import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import PetstoreTesting
import Testing

/// A person's data erased inside a live tenant by destroying the key it is sealed with
/// (crypto-shredding): the log keeps every byte and still verifies.
@Suite struct ErasureTests {
    /// Carol, a member with a key, as `GET /api/users` lists her.
    func addCarol(_ admin: TenantClient, slug: String) async throws -> (id: String, key: String) {
        let issued = try await admin.call(.post, "/api/keys", json: #"{"email":"carol@\#(slug).test","role":"member"}"#)
        #expect(issued.status == .created, "\(String(buffer: issued.body))")
        let key = try #require(try admin.object(issued)["api_key"] as? String)
        let users = try #require(try admin.object(try await admin.call(.get, "/api/users"))["items"] as? [[String: Any]])
        let carol = try #require(users.first { $0["email"] as? String == "carol@\(slug).test" }, "\(users)")
        return (try #require(carol["id"] as? String), key)
    }

    @Test(arguments: Placements.all) func `an erased person's email is gone from every read, the log keeps its bytes and still verifies`(placement: String) async throws {
        try await withApp(.router, placement: placement) { app, client in
            let slug = "forget-me"
            let admin = try await app.tenantClient(client, slug: slug)
            let carol = try await addCarol(admin, slug: slug)
            let tenant = try #require(try await app.catalog.tenant(slug: slug))
            let dataURL = try await app.dataURL(of: slug)

            // Sealed in the log from the start: no plaintext email in any stored event.
            let stored = try #require(try await scalar(dataURL, """
                SELECT string_agg(data::text, ' ') FROM events WHERE tenant_id = \(tenant.id.rawValue) AND event_type = 'UserAdded'
                """, as: String.self))
            #expect(!stored.contains("carol@"), "the email is stored sealed: \(stored)")
            #expect(stored.contains(#""sealed""#))
            let auditor = try await issue(admin, role: "auditor", email: "auditor@\(slug).test")
            let before = String(buffer: try await auditor.call(.get, "/api/events", extra: [.accept: "application/x-ndjson"]).body)
            let pets = String(buffer: try await admin.call(.get, "/api/pets?limit=100").body)

            #expect(try await admin.call(.delete, "/api/users/\(carol.id)").status == .badRequest, "erase=true is required")
            #expect(try await admin.call(.delete, "/api/users/\(carol.id)?erase=true").status == .noContent)

            let carolClient = TenantClient(client: client, key: carol.key, slug: slug)
            #expect(try await carolClient.call(.get, "/api/tenant").status == .unauthorized, "her keys were revoked with her")
            let users = String(buffer: try await admin.call(.get, "/api/users").body)
            #expect(!users.contains("carol@") && !users.contains(carol.id), "\(users)")
            #expect(try await admin.call(.delete, "/api/users/\(carol.id)?erase=true").status == .notFound, "erased once")
            #expect(try await admin.call(.delete, "/api/users/\(UUID().uuidString.lowercased())?erase=true").status == .notFound)

            // The key is destroyed; her mirror rows keep no email.
            #expect(try await scalar(dataURL, """
                SELECT count(*)::int FROM subject_keys WHERE tenant_id = \(tenant.id.rawValue) AND subject_id = \(UUID(uuidString: carol.id)!)
                   AND key IS NULL AND erased_at IS NOT NULL
                """, as: Int.self) == 1)
            #expect(try await scalar(dataURL, "SELECT count(*)::int FROM users WHERE tenant_id = \(tenant.id.rawValue) AND email LIKE 'carol@%'", as: Int.self) == 0)
            #expect(try await scalar(app.database.superuserURL, "SELECT count(*)::int FROM users WHERE email LIKE 'carol@%'", as: Int.self) == 0)
            let state = try #require(try await app.dependencies.tenants.state(of: tenant.id))
            #expect(state.users[UUID(uuidString: carol.id)!] == nil)
            #expect(state.users.values.allSatisfy { !$0.email.contains("carol") })

            // Nothing in the log was rewritten: the events before are the same bytes, hashes
            // included, and the whole chain verifies.
            let after = String(buffer: try await auditor.call(.get, "/api/events", extra: [.accept: "application/x-ndjson"]).body)
            #expect(after.hasPrefix(before), "the log before the erasure is unchanged")
            #expect(after.contains(#""type":"UserErased""#))
            let verified = try auditor.object(try await auditor.call(.get, "/api/events/verify"))
            #expect(verified["ok"] as? Bool == true, "\(verified)")
            #expect(String(buffer: try await admin.call(.get, "/api/pets?limit=100").body) == pets, "the read models hold no personal data")
            // Rebuilt from the log after the erasure, the read models come back the same (the
            // tenant's state, folded from its log above, is the same but for her).
            let config = String(buffer: try await admin.call(.get, "/api/config").body)
            for projection in ["pets", "tenant_config"] { try await app.dependencies.runtime.rebuild(projection, tenant: tenant.id) }
            #expect(String(buffer: try await admin.call(.get, "/api/pets?limit=100").body) == pets)
            #expect(String(buffer: try await admin.call(.get, "/api/config").body) == config)

            // The email may be used again, by a new person with a new key of their own.
            let again = try await addCarol(admin, slug: slug)
            #expect(again.id != carol.id)
            #expect(try await TenantClient(client: client, key: again.key, slug: slug).call(.get, "/api/tenant").status == .ok)
        }
    }

    @Test(arguments: Placements.all) func `the person holding the last admin keys is not erased`(placement: String) async throws {
        try await withApp(.router, placement: placement) { app, client in
            let admin = try await app.tenantClient(client, slug: "keep-admin")
            let users = try #require(try admin.object(try await admin.call(.get, "/api/users"))["items"] as? [[String: Any]])
            let owner = try #require(users.first { $0["role"] as? String == "admin" }?["id"] as? String)
            let before = try await app.eventCount("keep-admin")
            let refused = try await admin.call(.delete, "/api/users/\(owner)?erase=true")
            #expect(refused.status == .conflict)
            #expect(try admin.object(refused)["type"] as? String == "https://petstore.dev/problems/last-admin-key")
            #expect(try await app.eventCount("keep-admin") == before, "nothing was recorded")
            #expect(try await admin.call(.get, "/api/tenant").status == .ok)
        }
    }

    func issue(_ admin: TenantClient, role: String, email: String) async throws -> TenantClient {
        let issued = try await admin.call(.post, "/api/keys", json: #"{"email":"\#(email)","role":"\#(role)"}"#)
        #expect(issued.status == .created)
        return TenantClient(client: admin.client, key: try #require(try admin.object(issued)["api_key"] as? String), slug: admin.slug)
    }
}
