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
import PostgresNIO
import Projectors
import Tenancy
import Testing

/// Where a schema tenant's data lives, and how it is kept up with this build.
@Suite struct PlacementTests {
    static let petsVersion = ProjectionDefinition.named("pets")!.version

    @Test func `a schema tenant's log and read models are its own, and a shared tenant's stay in the shared tables`() async throws {
        try await withApp(.router) { app, client in
            let own = try await app.tenantClient(client, slug: "own-rooms", placement: "schema")
            let open = try await app.tenantClient(client, slug: "open-plan", placement: "shared")
            _ = try await own.register("Rex")
            _ = try await open.register("Tom", species: "cat")
            let ownID = try #require(try await app.catalog.tenant(slug: "own-rooms")).id
            let openID = try #require(try await app.catalog.tenant(slug: "open-plan")).id
            let hex = ownID.description.replacingOccurrences(of: "-", with: "")
            let url = app.database.superuserURL

            // The log: its partition holds all of its events and nobody else's.
            let partition = try await scalar(url, PostgresQuery(unsafeSQL: "SELECT count(*) FROM events_t_\(hex)"), as: Int.self)
            #expect(partition == (try await app.eventCount("own-rooms")))
            #expect(try await scalar(url, PostgresQuery(unsafeSQL: "SELECT count(*) FROM events_t_\(hex) WHERE tenant_id <> '\(ownID)'"), as: Int.self) == 0)

            // The read models: its own copy, behind its own views; none of its rows in the shared ones.
            let names = try await rows(url, PostgresQuery(unsafeSQL: "SELECT name FROM t_\(hex)_\(Self.petsVersion).pets ORDER BY name"), as: String.self)
            #expect(names == ["Biscuit", "Rex"])
            #expect(try await scalar(url, PostgresQuery(unsafeSQL: "SELECT count(*) FROM t_\(hex).pets"), as: Int.self) == 2)
            #expect(try await scalar(url, "SELECT count(*) FROM public.pets WHERE tenant_id = \(ownID)", as: Int.self) == 0)
            #expect(try await scalar(url, "SELECT count(*) FROM public.tenant_config WHERE tenant_id = \(ownID)", as: Int.self) == 0)
            #expect(try await scalar(url, PostgresQuery(unsafeSQL: "SELECT count(*) FROM t_\(hex).tenant_config"), as: Int.self) == 1)
            #expect(try await scalar(url, "SELECT count(*) FROM public.pets WHERE tenant_id = \(openID)", as: Int.self) == 2)
            // Analytics are the platform's: every tenant's rows in the shared tables.
            try await app.dependencies.runtime.catchUpAll()
            #expect(try await scalar(url, "SELECT count(*) FROM public.analytics_species WHERE tenant_id = \(ownID)", as: Int.self) == 1)

            // Its copies are under row-level security like the shared tables, and in its ledger.
            let unsecured = try await scalar(url, """
                SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE n.nspname LIKE \("t_\(hex)_%") AND c.relkind = 'r' AND NOT (c.relrowsecurity AND c.relforcerowsecurity)
                """, as: Int.self)
            #expect(unsecured == 0)
            let ledger = try await rows(url, "SELECT item FROM tenant_migrations WHERE tenant_id = \(ownID) ORDER BY item", as: String.self)
            let perTenant = ProjectionDefinition.all().filter { $0.scope == "tenant" }.map { "projection:\($0.name):\($0.version)" }.sorted()
            #expect(ledger == perTenant)
            #expect(try await scalar(url, "SELECT count(*) FROM tenant_migrations WHERE tenant_id = \(openID)", as: Int.self) == 0)
        }
    }

    @Test func `a tenant behind this build is answered 503 until migrate brings it up, and the others are served meanwhile`() async throws {
        try await withApp(.router) { app, client in
            let behind = try await app.tenantClient(client, slug: "left-behind", placement: "schema")
            let other = try await app.tenantClient(client, slug: "kept-up", placement: "schema")
            let pet = try await behind.register("Rex")
            let otherPet = try await other.register("Tom")
            let tenant = try #require(try await app.catalog.tenant(slug: "left-behind")).id
            try await Self.loseCopy(of: "pets", tenant: tenant, app: app)

            let refused = try await behind.call(.get, "/api/pets/\(pet)")
            #expect(refused.status == .serviceUnavailable)
            #expect(refused.headers[.contentType] == "application/problem+json")
            #expect(refused.headers[.retryAfter] == "5")
            #expect(try behind.object(refused)["type"] as? String == "https://petstore.dev/problems/tenant-migrating")
            let count: PostgresQuery = "SELECT count(*) FROM events WHERE tenant_id = \(tenant)"
            let events = try await scalar(app.database.superuserURL, count, as: Int.self)
            #expect(try await behind.call(.post, "/api/pets", json: #"{"name":"Nope","species":"dog"}"#).status == .serviceUnavailable)
            #expect(try await scalar(app.database.superuserURL, count, as: Int.self) == events)
            #expect(try await other.call(.get, "/api/pets/\(otherPet)").status == .ok)

            let migrator = app.dependencies.tenantMigrator()
            let plans = try await migrator.plans()
            #expect(plans.filter { !$0.missing.isEmpty }.map(\.slug) == ["left-behind"])
            #expect(plans.first { $0.slug == "left-behind" }?.missing.map(\.name) == ["pets"])
            let outcomes = await migrator.run(plans, jobs: 2)
            #expect(outcomes.count == 1 && outcomes.allSatisfy(\.succeeded))
            #expect(try await migrator.plans().allSatisfy { $0.missing.isEmpty })

            app.store.database.forgetHome(of: tenant)
            let served = try await behind.call(.get, "/api/pets/\(pet)")
            #expect(served.status == .ok)
            #expect(try behind.object(served)["name"] as? String == "Rex")
            #expect(try await behind.listIDs().count == 2)
        }
    }

    @Test func `a migration stopped after the copy is made is finished by the next run, applying each event once`() async throws {
        try await withApp(.router) { app, client in
            let tenant = try await app.tenantClient(client, slug: "half-done", placement: "schema")
            for name in ["Rex", "Tom", "Ada"] { _ = try await tenant.register(name) }
            let id = try #require(try await app.catalog.tenant(slug: "half-done")).id
            try await Self.loseCopy(of: "pets", tenant: id, app: app)
            // What a run killed after its first transaction leaves: the copy, empty, and no ledger row.
            let migrator = app.dependencies.tenantMigrator()
            let plan = try #require(try await migrator.plans(only: "half-done").first)
            #expect(plan.missing.map(\.name) == ["pets"])
            try await migrator.makeCopies(plan)
            app.store.database.forgetHome(of: id)
            #expect(try await tenant.call(.get, "/api/pets").status == .serviceUnavailable)
            #expect(await migrator.run(try await migrator.plans(), jobs: 1).allSatisfy(\.succeeded))
            let hex = id.description.replacingOccurrences(of: "-", with: "")
            let versions = try await rows(app.database.superuserURL, PostgresQuery(unsafeSQL: "SELECT name, version FROM t_\(hex).pets ORDER BY name"),
                                          as: (String, Int).self)
            #expect(versions.map(\.0) == ["Ada", "Biscuit", "Rex", "Tom"])
            #expect(versions.allSatisfy { $0.1 == 1 }, "an event applied twice would have moved a version past 1")
            // A second run finds nothing to do.
            #expect(await migrator.run(try await migrator.plans(), jobs: 1).isEmpty)
        }
    }

    @Test func `a new version of a per-tenant read model is built beside the old one in every schema tenant and swapped in`() async throws {
        try await withApp(.router) { app, client in
            let own = try await app.tenantClient(client, slug: "blue-green", placement: "schema")
            let open = try await app.tenantClient(client, slug: "shared-too", placement: "shared")
            let rex = try await own.register("Rex")
            _ = try await open.register("Tom")
            let original = try #require(ProjectionDefinition.named("pets"))
            let next = ProjectionDefinition(name: "pets", sql: original.sql + "\nALTER TABLE pets ADD COLUMN nickname text;\n")
            try await ProjectionInstaller(definitions: [next]).install(app.database.ownerURL, logger: TestCluster.logger)

            let migrator = app.dependencies.tenantMigrator()
            let plans = try await migrator.plans()
            #expect(plans.first { $0.slug == "blue-green" }?.missing == [.init(name: "pets", version: next.version, state: "building")])
            #expect(plans.first { $0.slug == "shared-too" }?.missing == [])
            // While the new version waits for its copies, the old one is served.
            try await app.dependencies.runtime.catchUpAll()
            #expect(try await scalar(app.database.ownerURL, "SELECT state FROM projections WHERE version = \(next.version)", as: String.self) == "building")
            #expect(try await own.call(.get, "/api/pets/\(rex)").status == .ok)

            #expect(await migrator.run(plans, jobs: 2).allSatisfy(\.succeeded))
            try await app.dependencies.runtime.finishBuilding()
            #expect(try await scalar(app.database.ownerURL, "SELECT state FROM projections WHERE version = \(next.version)", as: String.self) == "active")
            let id = try #require(try await app.catalog.tenant(slug: "blue-green")).id
            let hex = id.description.replacingOccurrences(of: "-", with: "")
            let nicknames = try await rows(app.database.superuserURL,
                                           PostgresQuery(unsafeSQL: "SELECT name, nickname FROM t_\(hex).pets ORDER BY name"), as: (String, String?).self)
            #expect(nicknames.map(\.0) == ["Biscuit", "Rex"], "the tenant's views read the new copy, filled from its log")
            #expect(try await own.call(.get, "/api/pets/\(rex)").status == .ok)
            #expect(try await open.listIDs().count == 2)
        }
    }

    /// Drops a schema tenant's copy of a projection's active version and its ledger row, as a
    /// version activated while the tenant had no copy would leave it.
    static func loseCopy(of projection: String, tenant: TenantID, app: TestApp) async throws {
        let version = try #require(ProjectionDefinition.named(projection)).version
        let hex = tenant.description.replacingOccurrences(of: "-", with: "")
        try await app.database.superuserURL.withConnection(logger: TestCluster.logger) { connection in
            try await connection.run(trusted: "DROP SCHEMA t_\(hex)_\(version) CASCADE", logger: TestCluster.logger)
            try await connection.query(
                "DELETE FROM tenant_migrations WHERE tenant_id = \(tenant) AND item = \("projection:\(projection):\(version)")",
                logger: TestCluster.logger).consume()
        }
        app.store.database.forgetHome(of: tenant)
    }
}

extension TestApp {
    func tenantClient(_ client: any TestClientProtocol, slug: String, placement: String) async throws -> TenantClient {
        TenantClient(client: client, key: try await onboard(client, slug: slug, placement: placement), slug: slug)
    }
}
