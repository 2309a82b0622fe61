import API
import Database
import Domain
import EventLog
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Operations
import PetstoreTesting
import PostgresNIO
import Tenancy
import Testing

/// Tenants placed in a database of their own on the second server.
@Suite struct DatabasePlacementTests {
    @Test func `a database tenant's log and read models are in its own database on the second server, and main keeps only its catalog mirror`() async throws {
        try await withApp(.router, placement: "database") { app, client in
            let own = try await app.tenantClient(client, slug: "own-house", placement: "database")
            let open = try await app.tenantClient(client, slug: "open-house", placement: "shared")
            _ = try await own.register("Rex")
            _ = try await open.register("Tom", species: "cat")
            let record = try #require(try await app.catalog.tenant(slug: "own-house"))
            #expect(record.placement == .database && record.server == "second" && record.status == .active)
            let id = record.id
            let home = try await TestCluster.second.superuserURL(database: HomeDatabases.name(for: id))
            let main = app.database.superuserURL

            // Its log and read models are in its database: every event, and nobody else's.
            var events = try await app.eventCount("own-house")
            #expect(events > 0)
            #expect(try await scalar(home, "SELECT count(*)::int FROM events WHERE tenant_id = \(id)", as: Int.self) == events)
            #expect(try await scalar(home, "SELECT count(*)::int FROM events WHERE tenant_id <> \(id)", as: Int.self) == 0)
            #expect(try await rows(home, "SELECT name FROM pets WHERE tenant_id = \(id) ORDER BY name", as: String.self) == ["Biscuit", "Rex"])
            #expect(try await scalar(home, "SELECT count(*)::int FROM tenant_config WHERE tenant_id = \(id)", as: Int.self) == 1)
            // The main database holds none of it: only the catalog rows that resolution and keys read.
            #expect(try await scalar(main, "SELECT count(*)::int FROM events WHERE tenant_id = \(id)", as: Int.self) == 0)
            #expect(try await scalar(main, "SELECT count(*)::int FROM pets WHERE tenant_id = \(id)", as: Int.self) == 0)
            #expect(try await scalar(main, "SELECT count(*)::int FROM api_keys WHERE tenant_id = \(id) AND revoked_at IS NULL", as: Int.self) == 1)
            #expect(try await scalar(main, "SELECT status FROM tenants WHERE id = \(id)", as: String.self) == "active")
            // The shared tenant is untouched by it.
            #expect(try await open.listIDs().count == 2)
            #expect(try await own.listIDs().count == 2)

            // The wall: another tenant's key gets the 404 of a missing tenant, recorded in this
            // tenant's own log and in the platform's security log.
            #expect(try await send(client, "/api/pets", .get, headers(open.key, tenant: "own-house")).status == .notFound)
            await app.dependencies.securityLog.flush()
            #expect(try await app.events(of: "CrossTenantAccessAttempted", tenant: "own-house").count == 1)
            #expect(try await scalar(main, "SELECT sum(attempts)::int FROM security_events WHERE target_tenant = \(id)", as: Int.self) == 1)
            #expect(try await scalar(home, "SELECT count(*)::int FROM events WHERE event_type = 'CrossTenantAccessAttempted'", as: Int.self) == 1)

            // Analytics are the platform's: the tenant's rows reach the main database's tables.
            try await app.dependencies.runtime.catchUpAll()
            #expect(try await scalar(main, "SELECT count(*)::int FROM analytics_species WHERE tenant_id = \(id)", as: Int.self) == 1)
            let report = try await app.dependencies.analyticsReport(range: try AnalyticsRange(from: nil, to: nil), tenant: "own-house")
            #expect(report.tenants.first?.pets.active == 2)

            // Its checkpoints are signed from its own head, and kept there.
            events = try await app.eventCount("own-house")
            #expect(try await app.dependencies.store.checkpointsDue().contains(id))
            let checkpoint = try #require(try await app.store.checkpoint(tenant: id, signer: app.dependencies.signer))
            #expect(checkpoint.seq == Int64(events))
            #expect(try await scalar(home, "SELECT count(*)::int FROM checkpoints WHERE tenant_id = \(id)", as: Int.self) == 1)
            let verified = try await app.store.verify(tenant: id)
            #expect(verified.valid)
        }
    }

    @Test func `a database tenant's commands projected inline cost the background loop no visit, and an append it did not project is still brought in`() async throws {
        try await withApp(.router, placement: "database") { app, client in
            let own = try await app.tenantClient(client, slug: "quiet-house", placement: "database")
            let rex = try await own.register("Rex")
            let runtime = app.dependencies.runtime
            try await Task.sleep(for: .milliseconds(300))
            let before = (pets: runtime.batches(of: "pets"), config: runtime.batches(of: "tenant_config"))
            // Each command wakes the background loop, and is apart from the next by more than its pacing.
            for index in 0..<8 {
                _ = try await own.register("Pup \(index)")
                try await Task.sleep(for: .milliseconds(150))
            }
            try await Task.sleep(for: .milliseconds(300))
            // One sweep of every tenant (every 10 s) may fall in the window; a visit per wake-up would be 8.
            #expect(runtime.batches(of: "pets") - before.pets <= 1)
            #expect(runtime.batches(of: "tenant_config") - before.config <= 1)

            // An event appended here without being projected (a repair, say): the wake-up's pass
            // finds it, well before the next sweep.
            let tenant = try #require(try await app.catalog.tenant(slug: "quiet-house")).id
            try await app.store.append(tenant: tenant, stream: try StreamName(type: PetEventCoding.streamType, id: try #require(UUID(uuidString: rex))),
                                       expected: .any, events: [try PetEventCoding.encode(.renamed(PetRenamed(name: "Rexy", at: Date())))])
            func eventuallyNamed(_ expected: String) async throws -> String? {
                var name: String?
                for _ in 0..<100 where name != expected {
                    name = try own.object(try await own.call(.get, "/api/pets/\(rex)"))["name"] as? String
                    try await Task.sleep(for: .milliseconds(20))
                }
                return name
            }
            #expect(try await eventuallyNamed("Rexy") == "Rexy")

            // Another process's append (a store whose signal this process does not hear), as the
            // notification relay reports it: this process's own appends are all projected, yet
            // the pass must look.
            try await app.database.withAppClient(maximumConnections: 2) { pool in
                let elsewhere = EventStore(client: pool, pools: app.dependencies.homePools, logger: TestCluster.logger)
                try await elsewhere.append(tenant: tenant, stream: try StreamName(type: PetEventCoding.streamType, id: try #require(UUID(uuidString: rex))),
                                           expected: .any, events: [try PetEventCoding.encode(.renamed(PetRenamed(name: "Rexford", at: Date())))])
            }
            app.store.signal.publish([tenant], origin: .remote)
            #expect(try await eventuallyNamed("Rexford") == "Rexford")
        }
    }

    @Test func `a key revoked in a database tenant stops working at once, and a lost mirror is re-derived from its database`() async throws {
        try await withApp(.router, placement: "database") { app, client in
            let own = try await app.tenantClient(client, slug: "keyed-house", placement: "database")
            let id = try #require(try await app.catalog.tenant(slug: "keyed-house")).id
            let state = try #require(try await app.dependencies.tenants.state(of: id))
            let admin = try #require(state.users.values.first)
            let (keyID, second) = try await app.dependencies.tenants.issueKey(tenant: id, userID: admin.id, role: .admin, metadata: .init())
            let other = TenantClient(client: client, key: second.value, slug: "keyed-house")
            #expect(try await other.call(.get, "/api/pets").status == .ok)

            // A revocation is written to the mirror before the tenant's transaction commits; when
            // that transaction then fails (as a request's does on a conflict at commit), the
            // mirror is set back and the key keeps working.
            struct Undone: Error {}
            await #expect(throws: Undone.self) {
                try await app.store.database.withTenant(id) { session in
                    try await app.dependencies.tenants.execute(.revokeApiKey(id: keyID, at: Date()), on: id, metadata: .init(), in: session)
                    throw Undone()
                }
            }
            app.dependencies.authenticator.forget(tenant: id, platform: false)
            let kept = try await other.call(.get, "/api/pets")
            #expect(kept.status == .ok, "the revocation did not commit: \(String(buffer: kept.body))")

            try await app.dependencies.tenants.execute(.revokeApiKey(id: keyID, at: Date()), on: id, metadata: .init())
            app.dependencies.authenticator.forget(tenant: id, platform: false)
            #expect(try await other.call(.get, "/api/pets").status == .unauthorized)
            #expect(try await own.call(.get, "/api/pets").status == .ok)

            // The mirror's rows lost (a crash after the tenant's commit): start-up brings them back.
            let main = app.database.superuserURL
            try await main.withConnection(logger: TestCluster.logger) { connection in
                try await connection.query("UPDATE tenants SET plan = 'free' WHERE id = \(id)", logger: TestCluster.logger).consume()
            }
            await app.catalog.mirrorAll()
            #expect(try await scalar(main, "SELECT plan FROM tenants WHERE id = \(id)", as: String.self) == "enterprise")
            #expect(try await scalar(main, "SELECT count(*)::int FROM api_keys WHERE tenant_id = \(id) AND revoked_at IS NOT NULL", as: Int.self) == 1)
        }
    }

    @Test func `an unknown server, another server without a database placement, and an unreachable server are clear errors, and a rerun resumes`() async throws {
        try await withApp(.router, placement: "database") { app, client in
            func create(_ body: String) async throws -> (HTTPResponse.Status, [String: Any]) {
                try await client.execute(uri: "/api/admin/tenants", method: .post,
                                         headers: [.authorization: "Bearer \(app.platformKey)", .contentType: "application/json"],
                                         body: ByteBuffer(string: body)) { response in
                    (response.status, (try? JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any]) ?? [:])
                }
            }
            let (unknown, problem) = try await create(#"{"slug":"nowhere","name":"N","plan":"enterprise","placement":"database","server":"atlantis"}"#)
            #expect(unknown == .unprocessableContent)
            #expect("\(problem["errors"] ?? "")".contains("server"))
            #expect(try await app.catalog.tenant(slug: "nowhere") == nil)
            let (misplaced, _) = try await create(#"{"slug":"nowhere","name":"N","plan":"premium","placement":"schema","server":"second"}"#)
            #expect(misplaced == .unprocessableContent)

            // A server that stopped answering: onboarding fails with 503, the slug is held by a
            // catalog row naming the database, and a rerun once it answers finishes the tenant.
            try await app.dependencies.servers.add(name: "gone", url: try await TestCluster.second.serverURL().connectionString)
            let closed = try await TestCluster.second.serverURL().with(port: 1).connectionString
            try await app.database.superuserURL.withConnection(logger: TestCluster.logger) { connection in
                try await connection.query("UPDATE servers SET url = \(closed) WHERE name = 'gone'", logger: TestCluster.logger).consume()
            }
            let body = #"{"slug":"far-away","name":"F","plan":"enterprise","placement":"database","server":"gone"}"#
            let (failed, _) = try await create(body)
            #expect(failed == .serviceUnavailable)
            let held = try #require(try await app.catalog.tenant(slug: "far-away"))
            #expect(held.status == .provisioning && held.location == HomeDatabases.name(for: held.id))
            try await app.database.superuserURL.withConnection(logger: TestCluster.logger) { connection in
                try await connection.query("UPDATE servers SET url = \(try await TestCluster.second.serverURL().connectionString) WHERE name = 'gone'",
                                           logger: TestCluster.logger).consume()
            }
            let (resumed, created) = try await create(body)
            #expect(resumed == .created)
            let key = try #require(created["admin_api_key"] as? String)
            let tenant = TenantClient(client: client, key: key, slug: "far-away")
            _ = try await tenant.register("Nemo", species: "fish")
            #expect(try await tenant.listIDs().count == 2)
        }
    }

    @Test func `migrate brings a database tenant's database to this build once, and a run with nothing to do leaves it alone`() async throws {
        try await withApp(.router, placement: "database") { app, client in
            let own = try await app.tenantClient(client, slug: "kept-house", placement: "database")
            let id = try #require(try await app.catalog.tenant(slug: "kept-house")).id
            let migrator = app.dependencies.tenantMigrator()
            // Onboarding made it from this build: nothing to do.
            #expect(try await migrator.plans(only: "kept-house").first?.missing == [])

            // A database from an earlier build: its ledger lacks this one, and a migration it
            // lacks (a table of this build) is gone.
            let home = try await TestCluster.second.superuserURL(database: HomeDatabases.name(for: id))
            try await app.database.superuserURL.withConnection(logger: TestCluster.logger) { connection in
                try await connection.query("DELETE FROM tenant_migrations WHERE tenant_id = \(id)", logger: TestCluster.logger).consume()
            }
            // 0012 made the functions below, 0013 changed one of them.
            let earlier = try Migration.schema().filter { (12...13).contains($0.version) }.map(\.version)
            #expect(earlier.count == 2)
            try await home.withConnection(logger: TestCluster.logger) { connection in
                try await connection.query("DELETE FROM schema_migrations WHERE version = ANY(\(earlier))", logger: TestCluster.logger).consume()
                try await connection.run(trusted: "DROP FUNCTION record_tenant_database(uuid, text)", logger: TestCluster.logger)
                try await connection.run(trusted: "DROP FUNCTION database_tenants()", logger: TestCluster.logger)
            }
            // Until migrate brings it to this build, the tenant is refused, not served from a
            // database this build does not know.
            app.store.database.forgetHome(of: id)
            let refused = try await own.call(.get, "/api/pets")
            #expect(refused.status == .serviceUnavailable, "\(String(buffer: refused.body))")
            #expect(try own.object(refused)["type"] as? String == "https://petstore.dev/problems/tenant-migrating")

            let plan = try #require(try await migrator.plans(only: "kept-house").first)
            #expect(plan.missing.map(\.name) == ["database"])
            let outcomes = await migrator.run([plan], jobs: 2)
            let failures = outcomes.filter { !$0.succeeded }.map { String(describing: $0.error) }
            #expect(failures.isEmpty, "\(failures)")
            #expect(try await scalar(home, "SELECT count(*)::int FROM pg_proc WHERE proname = 'record_tenant_database'", as: Int.self) == 1)
            #expect(try await migrator.plans(only: "kept-house").first?.missing == [])
            // The ledger's record is announced to every server (`CatalogInvalidation`, not run here).
            app.store.database.forgetHome(of: id)
            _ = try await own.register("Still")
            #expect(try await own.listIDs().count == 2)
        }
    }
}
