import API
import Database
import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import Operations
import PetstoreTesting
import Tenancy
import Testing

/// Another server's caches follow this one's catalog changes as they commit.
@Suite struct CatalogInvalidationTests {
    /// Polls `condition` for up to two seconds: far below the ten minutes the caches would otherwise keep.
    func eventually(_ condition: () async throws -> Bool) async throws -> Bool {
        for _ in 0..<100 {
            if try await condition() { return true }
            try await Task.sleep(for: .milliseconds(20))
        }
        return false
    }

    @Test func `a key revoked, a tenant suspended and a tenant migrated on one server take effect on another at once`() async throws {
        try await withApp(.router) { app, client in
            let tenant = try await app.tenantClient(client, slug: "two-servers", placement: "schema")
            let issued = try await tenant.call(.post, "/api/keys", json: #"{"email":"second@two.test","role":"member"}"#)
            let body = try tenant.object(issued)
            let (keyID, secret) = (try #require(body["id"] as? String), try #require(body["api_key"] as? String))

            try await app.database.withAppClient(maximumConnections: 4) { pool in
                // A second server on the same database, caching for ten minutes and listening for changes.
                let other = AppDependencies(client: pool, migrator: try Migrator(), catalogNotifications: true, logger: TestCluster.logger)
                let listener = try #require(other.catalogInvalidation)
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask { try await listener.run() }
                    defer { group.cancelAll() }
                    let id = try #require(try await other.catalog.tenant(slug: "two-servers")).id
                    #expect(try await other.authenticator.authenticate(authorization: "Bearer \(secret)") != nil)
                    #expect(try await other.catalog.tenant(slug: "two-servers")?.status == .active)
                    #expect(try await other.store.database.home(of: id).placement == .schema)

                    #expect(try await tenant.call(.delete, "/api/keys/\(keyID)").status == .noContent)
                    #expect(try await eventually { try await other.authenticator.authenticate(authorization: "Bearer \(secret)") == nil },
                            "the revoked key is refused by the other server")

                    let suspended = try await send(client, "/api/admin/tenants/two-servers", .patch,
                                                   [.authorization: "Bearer \(app.platformKey)", .contentType: "application/json"],
                                                   body: ByteBuffer(string: #"{"status":"suspended"}"#))
                    #expect(suspended.status == .ok)
                    #expect(try await eventually { try await other.catalog.tenant(slug: "two-servers")?.status == .suspended })

                    // Behind, then migrated: the other server's view of where the tenant stands follows.
                    try await PlacementTests.loseCopy(of: "pets", tenant: id, app: app)
                    try await pool.query("SELECT pg_notify('petstore_catalog', \(id.description))", logger: TestCluster.logger).consume()
                    #expect(try await eventually { try await other.store.database.home(of: id).missing == ["pets:\(PlacementTests.petsVersion)"] })
                    #expect(await app.dependencies.tenantMigrator().run(try await app.dependencies.tenantMigrator().plans(), jobs: 1).allSatisfy(\.succeeded))
                    #expect(try await eventually { try await other.store.database.home(of: id).missing.isEmpty })
                }
            }
        }
    }
}
