import API
import EventLog
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Operations
import Tenancy
import Testing

/// A tenant admin can revoke keys, but never the tenant's last working admin key: after it nobody
/// could manage the tenant's keys again (every request would be a 401).
@Suite struct KeyRevocationTests {
    struct Key {
        let id: String
        let secret: String
    }

    /// The tenant's keys as `GET /api/keys` lists them.
    func keys(_ tenant: TenantClient) async throws -> [[String: Any]] {
        let response = try await tenant.call(.get, "/api/keys")
        #expect(response.status == .ok, "\(String(buffer: response.body))")
        return try tenant.object(response)["items"] as? [[String: Any]] ?? []
    }

    func activeAdminKeys(_ tenant: TenantClient) async throws -> [String] {
        try await keys(tenant).filter { $0["role"] as? String == "admin" && $0["revoked"] as? Bool == false }.compactMap { $0["id"] as? String }
    }

    func issueAdminKey(_ tenant: TenantClient, email: String) async throws -> Key {
        let response = try await tenant.call(.post, "/api/keys", json: #"{"email":"\#(email)","role":"admin"}"#)
        #expect(response.status == .created, "\(String(buffer: response.body))")
        let body = try tenant.object(response)
        return Key(id: try #require(body["id"] as? String), secret: try #require(body["api_key"] as? String))
    }

    @Test(arguments: Placements.all) func `revoking the tenant's last admin key is 409 problem+json and changes nothing`(placement: String) async throws {
        try await withApp(.router, placement: placement) { app, client in
            let tenant = try await app.tenantClient(client, slug: "last-admin")
            let own = try #require(try await activeAdminKeys(tenant).first)
            let before = try await app.eventCount("last-admin")

            let refused = try await tenant.call(.delete, "/api/keys/\(own)")
            #expect(refused.status == .conflict)
            #expect(refused.headers[.contentType] == "application/problem+json")
            let problem = try tenant.object(refused)
            #expect(problem["type"] as? String == "https://petstore.dev/problems/last-admin-key")
            #expect(problem["status"] as? Int == 409)
            #expect(try await app.eventCount("last-admin") == before, "no ApiKeyRevoked was appended")
            #expect(try await tenant.call(.get, "/api/tenant").status == .ok, "the key still works")

            // With a second admin key the first one can go, and then the second is the last.
            let second = try await issueAdminKey(tenant, email: "second@last-admin.test")
            #expect(try await tenant.call(.delete, "/api/keys/\(own)").status == .noContent)
            let successor = TenantClient(client: client, key: second.secret, slug: "last-admin")
            #expect(try await successor.call(.delete, "/api/keys/\(second.id)").status == .conflict)
            #expect(try await activeAdminKeys(successor) == [second.id])
        }
    }

    @Test(arguments: Placements.all) func `two admins revoking each other's keys at once never leave the tenant without one`(placement: String) async throws {
        try await withApp(.live, placement: placement) { app, client in
            let port = try #require(client.port)
            let tenant = try await app.tenantClient(client, slug: "mutual-revoke")
            let record = try #require(try await app.catalog.tenant(slug: "mutual-revoke"))
            var survivor = Key(id: try #require(try await activeAdminKeys(tenant).first), secret: tenant.key)
            for round in 0..<8 {
                let admin = TenantClient(client: client, key: survivor.secret, slug: "mutual-revoke")
                let other = try await issueAdminKey(admin, email: "admin\(round)@mutual-revoke.test")
                let pair = [survivor, other]
                // Each key revokes the other, several times over, each request on a connection of
                // its own so that their decisions overlap.
                let statuses = try await withThrowingTaskGroup(of: HTTPResponse.Status.self) { group in
                    for _ in 0..<4 {
                        for (index, key) in pair.enumerated() {
                            let target = pair[1 - index].id
                            group.addTask {
                                try await TestClient.withClient(host: "127.0.0.1", port: port) { connection in
                                    try await connection.execute(TestClient.Request(
                                        "/api/keys/\(target)", method: .delete,
                                        headers: [.authorization: "Bearer \(key.secret)", HTTPField.Name("X-Tenant-ID")!: "mutual-revoke"])).status
                                }
                            }
                        }
                    }
                    return try await group.reduce(into: [HTTPResponse.Status]()) { $0.append($1) }
                }
                // 204 for the winner (and its repeats, revoking a revoked key being a no-op); 409
                // for a request that decided against the same version or saw the last admin key;
                // 401 for one whose key was revoked before it was checked.
                #expect(statuses.contains(.noContent), "round \(round): \(statuses)")
                #expect(statuses.allSatisfy { ([.noContent, .conflict, .unauthorized] as [HTTPResponse.Status]).contains($0) },
                        "round \(round): \(statuses)")
                let left = try #require(try await app.dependencies.tenants.state(of: record.id)).apiKeys.values
                    .filter { $0.role == .admin && !$0.revoked }.map { $0.id.uuidString.lowercased() }
                #expect(left.count == 1, "round \(round): exactly one admin key is left, not \(left.count); \(statuses)")
                guard let kept = pair.first(where: { left.contains($0.id) }) else { return }
                survivor = kept
            }
        }
    }

    @Test(arguments: Placements.all) func `concurrent revocations of the last two admin keys through the catalog leave one`(placement: String) async throws {
        try await withApp(.router, placement: placement) { app, client in
            _ = try await app.onboard(client, slug: "catalog-race")
            let record = try #require(try await app.catalog.tenant(slug: "catalog-race"))
            let metadata = EventMetadata(actor: "test")
            for round in 0..<5 {
                let state = try #require(try await app.dependencies.tenants.state(of: record.id))
                let admin = try #require(state.users.values.first { $0.role == .admin })
                _ = try await app.dependencies.tenants.issueKey(tenant: record.id, userID: admin.id, role: .admin, metadata: metadata)
                let pair = try #require(try await app.dependencies.tenants.state(of: record.id)).apiKeys.values.filter { $0.role == .admin && !$0.revoked }.map(\.id)
                #expect(pair.count == 2)
                let outcomes = await withTaskGroup(of: TenancyError?.self) { group in
                    for id in pair {
                        group.addTask {
                            do {
                                try await app.dependencies.tenants.execute(.revokeApiKey(id: id, at: Date()), on: record.id, metadata: metadata)
                                return nil
                            } catch {
                                return error as? TenancyError ?? TenancyError(.storage, "\(error)")
                            }
                        }
                    }
                    return await group.reduce(into: [TenancyError?]()) { $0.append($1) }
                }
                #expect(outcomes.filter { $0 == nil }.count == 1, "round \(round): \(outcomes)")
                #expect(outcomes.compactMap { $0?.code.rawValue }.allSatisfy { ["conflict", "last_admin_key"].contains($0) }, "round \(round): \(outcomes)")
                let left = try #require(try await app.dependencies.tenants.state(of: record.id)).apiKeys.values.filter { $0.role == .admin && !$0.revoked }
                #expect(left.count == 1, "round \(round)")
                // Whichever won, the key left is now the last one and stays.
                let last = try #require(left.first)
                await #expect(throws: TenancyError.self, "round \(round)") {
                    try await app.dependencies.tenants.execute(.revokeApiKey(id: last.id, at: Date()), on: record.id, metadata: metadata)
                }
            }
        }
    }
}
