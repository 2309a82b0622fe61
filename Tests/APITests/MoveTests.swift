import Database
import Domain
import EventLog
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Operations
import PetstoreTesting
import PostgresNIO
import Synchronization
import Tenancy
import Testing

@Suite struct MoveTests {
    @Test(arguments: ["schema,shared", "schema,database,shared"])
    func `a tenant moves while a writer and a reader keep going: nothing lost, no read fails`(path: String) async throws {
        let path = path.split(separator: ",").compactMap { Placement(rawValue: String($0)) }
        // A database of its own is made on the second server, which the app registers for it.
        try await withApp(placement: path.contains(.database) ? "database" : "shared") { app, client in
            let suffix = UUID().uuidString.prefix(8).lowercased()
            let plan = path.contains(.database) ? "enterprise" : "basic"
            let tenant = TenantClient(client: client, key: try await app.onboard(client, slug: "mover-\(suffix)", plan: plan, placement: "shared"),
                                      slug: "mover-\(suffix)")
            let other = try await app.tenantClient(client, slug: "stays-\(suffix)", placement: "shared")
            let id = try #require(try await app.catalog.tenant(slug: tenant.slug)).id
            for index in 0..<150 { _ = try await tenant.register("Before \(index)") }
            let known = try await tenant.register("Known")
            let otherPet = try await other.register("Neighbour")

            let traffic = Traffic()
            let writer = Task {
                var index = 0
                while !traffic.stopped {
                    index += 1
                    let response = try await tenant.call(.post, "/api/pets", json: #"{"name":"During \#(index)","species":"cat"}"#)
                    if response.status == .created, let pet = try tenant.object(response)["id"] as? String {
                        traffic.acknowledged(pet)
                    } else {
                        traffic.failed("POST \(response.status.code): \(String(buffer: response.body))")
                    }
                }
            }
            let reader = Task {
                while !traffic.stopped {
                    let one = try await tenant.call(.get, "/api/pets/\(known)")
                    let list = try await tenant.call(.get, "/api/pets?limit=100")
                    let page = (try? tenant.object(list)["items"] as? [[String: Any]])?.count ?? 0
                    if one.status != .ok || list.status != .ok || page != 100 {
                        traffic.failed("GET \(one.status.code)/\(list.status.code) with \(page) pets")
                    } else {
                        traffic.read()
                    }
                }
            }

            let move = try #require(app.dependencies.move(grace: .milliseconds(500)))
            try await Task.sleep(for: .milliseconds(300))
            var from = Placement.shared
            for target in path {
                let before = traffic.writes.count, readsBefore = traffic.reads
                let moved = try #require(try await move.move(slug: tenant.slug, to: target, server: target == .database ? "second" : nil))
                let record = try #require(try await app.catalog.tenant(slug: tenant.slug))
                #expect(record.placement == target && record.server == (target == .database ? "second" : "main"))
                #expect(moved.from == from && moved.pause < .seconds(1), "\(from) to \(target): writes waited \(moved.pause)")
                // Every move copies the log but one from a schema back to the shared tables, which keeps its partition.
                if !(from == .schema && target == .shared) {
                    #expect(moved.copiedOnline > 150, "the log was copied while serving: \(moved)")
                }
                switch target {
                case .schema:
                    #expect(try await Storage.partition(of: id, in: app.database.superuserURL), "the log is the tenant's own partition now")
                    #expect(try await Storage.sharedReadModelRows(of: id, in: app.database.superuserURL) == 0, "the shared tables' copy is removed")
                case .database:
                    #expect(try await Storage.eventRows(of: id, in: app.database.superuserURL) == 0, "the main database's copy of the log is removed")
                    #expect(try await Storage.schemas(of: id, in: app.database.superuserURL).isEmpty)
                    #expect(try await Storage.eventRows(of: id, in: try await app.dataURL(of: tenant.slug)) > 150)
                case .shared:
                    #expect(try await Storage.schemas(of: id, in: app.database.superuserURL).isEmpty, "the tenant's schemas are dropped")
                    #expect(try await Storage.sharedReadModelRows(of: id, in: app.database.superuserURL) > 150)
                    if from == .database {
                        let name = "t_" + id.description.replacingOccurrences(of: "-", with: "")
                        #expect(try await Storage.databaseExists(name, on: try await TestCluster.second.superuserURL(database: "postgres")) == false,
                                "the database of its own is dropped")
                    }
                }
                // The writer and the reader went on through the move, and after it.
                for _ in 0..<1000 where traffic.writes.count < before + 5 || traffic.reads < readsBefore + 3 {
                    try await Task.sleep(for: .milliseconds(20))
                }
                #expect(traffic.writes.count >= before + 5 && traffic.reads >= readsBefore + 3)
                from = target
            }
            traffic.stop()
            try await writer.value
            try await reader.value

            #expect(traffic.failures.isEmpty, "\(traffic.failures.prefix(5))")
            #expect(traffic.reads >= 3 * path.count && traffic.writes.count >= 5 * path.count, "reads \(traffic.reads), writes \(traffic.writes.count)")
            // Every acknowledged write is in the log exactly once, and readable.
            let registered = try await app.events(of: "PetRegistered", tenant: tenant.slug).map { $0.stream.id.uuidString.lowercased() }
            let counts = Dictionary(registered.map { ($0, 1) }, uniquingKeysWith: +)
            for pet in traffic.writes { #expect(counts[pet.lowercased()] == 1, "pet \(pet) is in the log \(counts[pet.lowercased()] ?? 0) times") }
            #expect(registered.count == Set(registered).count)
            for pet in traffic.writes.suffix(20) {
                #expect(try await tenant.call(.get, "/api/pets/\(pet)").status == .ok)
            }
            #expect(try await tenant.allIDs().count == registered.count)
            let verified = try await app.store.verify(tenant: id)
            let logged = try await app.eventCount(tenant.slug)
            #expect(verified.valid && verified.headSeq == Int64(logged), "\(verified)")
            #expect(try await other.call(.get, "/api/pets/\(otherPet)").status == .ok, "the other tenant is untouched")
            #expect(try await app.store.verify(tenant: try #require(try await app.catalog.tenant(slug: other.slug)).id).valid)
        }
    }

    @Test func `a move stopped at each phase resumes when run again, or is given up, and the tenant serves throughout`() async throws {
        try await withApp(.router, placement: "shared") { app, client in
            let suffix = UUID().uuidString.prefix(8).lowercased()
            let tenant = try await app.basicTenant(client, slug: "halted-\(suffix)")
            let id = try #require(try await app.catalog.tenant(slug: tenant.slug)).id
            for index in 0..<20 { _ = try await tenant.register("Pet \(index)") }
            struct Stop: Error {}

            for (phase, target) in [(TenantMove.Phase.copy, Placement.schema), (.copy, .shared), (.commit, .schema), (.commit, .shared),
                                    (.cleanup, .schema), (.cleanup, .shared)] {
                let before = try await app.catalog.tenant(slug: tenant.slug)?.placement
                let stopAt: @Sendable (TenantMove.Phase) async throws -> Void = { if $0 == phase { throw Stop() } }
                let halted = try #require(app.dependencies.move(grace: .zero, beforePhase: stopAt))
                await #expect(throws: Stop.self) { try await halted.move(slug: tenant.slug, to: target) }
                // Stopped before its commit, the switch left nothing; after it, the tenant is in the target.
                let now = try await app.catalog.tenant(slug: tenant.slug)?.placement
                #expect(now == (phase == .cleanup ? target : before), "stopped at \(phase)")
                _ = try await tenant.register("Between \(phase)")
                #expect(try await tenant.allIDs().count == (try await app.events(of: "PetRegistered", tenant: tenant.slug).count))
                // Another target is refused while this move is open.
                let other: Placement = target == .schema ? .shared : .schema
                await #expect(throws: TenancyError.self) { try await app.dependencies.move()!.move(slug: tenant.slug, to: other) }
                let resumed = try await app.dependencies.move(grace: .zero)!.move(slug: tenant.slug, to: target)
                #expect(resumed != nil)
                #expect(try await app.catalog.tenant(slug: tenant.slug)?.placement == target)
                _ = try await tenant.register("After \(phase)")
                #expect(try await app.store.verify(tenant: id).valid)
            }

            // Given up before its switch, a move leaves the tenant where it was, without the copy.
            let stopAtCommit: @Sendable (TenantMove.Phase) async throws -> Void = { if $0 == .commit { throw Stop() } }
            let halted = try #require(app.dependencies.move(beforePhase: stopAtCommit))
            await #expect(throws: Stop.self) { try await halted.move(slug: tenant.slug, to: .schema) }
            #expect(try await Storage.schemas(of: id, in: app.database.superuserURL).isEmpty == false)
            #expect(try await app.dependencies.move()!.abort(slug: tenant.slug))
            #expect(try await app.catalog.tenant(slug: tenant.slug)?.placement == .shared)
            #expect(try await Storage.schemas(of: id, in: app.database.superuserURL).isEmpty)
            #expect(try await Storage.unattachedLog(of: id, in: app.database.superuserURL) == false)
            #expect(try await app.dependencies.move()!.abort(slug: tenant.slug) == false)
            #expect(try await tenant.call(.post, "/api/pets", json: #"{"name":"Last","species":"dog"}"#).status == .created)
            // A plan that may not have a schema of its own is not given one.
            let free = try await app.tenantClient(client, slug: "free-\(suffix)", placement: "shared")
            await #expect(throws: TenancyError.self) { try await app.dependencies.move()!.move(slug: free.slug, to: .schema) }
            // Already there: nothing to do.
            #expect(try await app.dependencies.move()!.move(slug: tenant.slug, to: .shared) == nil)
        }
    }

    @Test func `a move into or out of a database of its own stopped at each phase resumes when run again, or is given up`() async throws {
        try await withApp(.router, placement: "database") { app, client in
            let suffix = UUID().uuidString.prefix(8).lowercased()
            let tenant = TenantClient(client: client, key: try await app.onboard(client, slug: "far-\(suffix)", plan: "enterprise", placement: "shared"),
                                      slug: "far-\(suffix)")
            let id = try #require(try await app.catalog.tenant(slug: tenant.slug)).id
            let name = "t_" + id.description.replacingOccurrences(of: "-", with: "")
            let second = try await TestCluster.second.superuserURL(database: "postgres")
            for index in 0..<20 { _ = try await tenant.register("Pet \(index)") }
            struct Stop: Error {}
            func server(_ target: Placement) -> String? { target == .database ? "second" : nil }

            for (phase, target) in [(TenantMove.Phase.copy, Placement.database), (.copy, .shared), (.commit, .database), (.commit, .shared),
                                    (.cleanup, .database), (.cleanup, .shared)] {
                let before = try await app.catalog.tenant(slug: tenant.slug)?.placement
                let stopAt: @Sendable (TenantMove.Phase) async throws -> Void = { if $0 == phase { throw Stop() } }
                let halted = try #require(app.dependencies.move(grace: .zero, beforePhase: stopAt))
                await #expect(throws: Stop.self) { try await halted.move(slug: tenant.slug, to: target, server: server(target)) }
                let now = try await app.catalog.tenant(slug: tenant.slug)?.placement
                #expect(now == (phase == .cleanup ? target : before), "stopped at \(phase) on the way to \(target)")
                // Out of a database of its own, a move stopped once its source was frozen holds the
                // tenant's writes (503, nothing done) until it is run again; any other stop holds nothing.
                let frozen = before == .database && phase == .commit
                let written = try await tenant.call(.post, "/api/pets", json: #"{"name":"Between","species":"cat"}"#)
                #expect(written.status == (frozen ? .serviceUnavailable : .created), "\(phase) to \(target): \(String(buffer: written.body))")
                #expect(try await app.store.verify(tenant: id).valid)
                await #expect(throws: TenancyError.self) { try await app.dependencies.move()!.move(slug: tenant.slug, to: .schema) }
                let resumed = try await app.dependencies.move(grace: .zero)!.move(slug: tenant.slug, to: target, server: server(target))
                #expect(resumed != nil)
                let record = try #require(try await app.catalog.tenant(slug: tenant.slug))
                #expect(record.placement == target && record.server == (target == .database ? "second" : "main"))
                #expect(try await Storage.databaseExists(name, on: second) == (target == .database))
                _ = try await tenant.register("After \(phase)")
                #expect(try await tenant.allIDs().count == (try await app.events(of: "PetRegistered", tenant: tenant.slug).count))
                #expect(try await app.store.verify(tenant: id).valid)
            }

            // Given up before its switch, a move into a database of its own drops the database;
            // one out of it thaws the source, whose writes go on.
            let stopAtCommit: @Sendable (TenantMove.Phase) async throws -> Void = { if $0 == .commit { throw Stop() } }
            let halted = try #require(app.dependencies.move(grace: .zero, beforePhase: stopAtCommit))
            await #expect(throws: Stop.self) { try await halted.move(slug: tenant.slug, to: .database, server: "second") }
            #expect(try await Storage.databaseExists(name, on: second))
            #expect(try await app.dependencies.move()!.abort(slug: tenant.slug))
            #expect(try await Storage.databaseExists(name, on: second) == false)
            #expect(try await tenant.call(.post, "/api/pets", json: #"{"name":"Stays","species":"dog"}"#).status == .created)

            #expect(try await app.dependencies.move(grace: .zero)!.move(slug: tenant.slug, to: .database, server: "second") != nil)
            await #expect(throws: Stop.self) { try await halted.move(slug: tenant.slug, to: .shared) }
            #expect(try await tenant.call(.post, "/api/pets", json: #"{"name":"Held","species":"dog"}"#).status == .serviceUnavailable)
            #expect(try await app.dependencies.move()!.abort(slug: tenant.slug))
            #expect(try await app.catalog.tenant(slug: tenant.slug)?.placement == .database)
            #expect(try await tenant.call(.post, "/api/pets", json: #"{"name":"Thawed","species":"dog"}"#).status == .created)
            #expect(try await app.store.verify(tenant: id).valid)
        }
    }

    @Test func `a command entered in the home a tenant left is refused by the database and runs again in the new one`() async throws {
        try await withApp(.router, placement: "shared") { app, client in
            let tenant = try await app.tenantClient(client, slug: "fenced-\(UUID().uuidString.prefix(8).lowercased())", placement: "shared")
            let id = try #require(try await app.catalog.tenant(slug: tenant.slug)).id
            // A session that entered as a schema tenant while the catalog says shared: its append is refused.
            let stale = TenantHome(placement: .schema, server: "main", location: "t_" + id.description.replacingOccurrences(of: "-", with: ""),
                                   missing: [], inService: true)
            let refused = try await app.database.ownerURL.withConnection(logger: TestCluster.logger) { connection in
                do {
                    try await connection.query("""
                        SELECT set_config('app.tenant_id', \(id.description), false), set_config('petstore.home', \(stale.fence), false)
                        """, logger: TestCluster.logger).consume()
                    try await connection.query("UPDATE event_heads SET updated_at = now() WHERE tenant_id = \(id)", logger: TestCluster.logger).consume()
                    return nil as String?
                } catch let error as PSQLError {
                    return error.serverInfo?[.sqlState]
                }
            }
            #expect(refused == "PT410")
            // The session's own home passes.
            #expect(try await tenant.call(.post, "/api/pets", json: #"{"name":"Rex","species":"dog"}"#).status == .created)
        }
    }
}

extension TestApp {
    /// A tenant in the shared tables on a plan that may have a schema of its own.
    func basicTenant(_ client: any TestClientProtocol, slug: String) async throws -> TenantClient {
        TenantClient(client: client, key: try await onboard(client, slug: slug, plan: "basic", placement: "shared"), slug: slug)
    }
}

extension TenantClient {
    /// Every pet's id, page by page (at most 50 pages).
    func allIDs() async throws -> [String] {
        var ids: [String] = []
        var cursor: String?
        for _ in 0..<50 {
            let response = try await call(.get, "/api/pets?limit=100" + (cursor.map { "&cursor=\($0)" } ?? ""))
            #expect(response.status == .ok)
            let page = try object(response)
            ids += (page["items"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? String }
            cursor = page["next_cursor"] as? String
            if cursor == nil { return ids }
        }
        Issue.record("more than 50 pages of pets")
        return ids
    }
}

/// What a writer and a reader saw during a move.
final class Traffic: Sendable {
    private let state = Mutex<(stopped: Bool, writes: [String], reads: Int, failures: [String])>((false, [], 0, []))
    var stopped: Bool { state.withLock { $0.stopped } }
    var writes: [String] { state.withLock { $0.writes } }
    var reads: Int { state.withLock { $0.reads } }
    var failures: [String] { state.withLock { $0.failures } }
    func stop() { state.withLock { $0.stopped = true } }
    func acknowledged(_ pet: String) { state.withLock { $0.writes.append(pet) } }
    func read() { state.withLock { $0.reads += 1 } }
    func failed(_ what: String) { state.withLock { $0.failures.append(what) } }
}

/// Where a tenant's data is, as the catalog of PostgreSQL tells it.
enum Storage {
    static func partition(of tenant: TenantID, in url: DatabaseURL) async throws -> Bool {
        let name = "events_t_" + tenant.description.replacingOccurrences(of: "-", with: "")
        return try await count("SELECT count(*)::int8 FROM pg_inherits i WHERE i.inhrelid = to_regclass(\(name))", in: url) == 1
    }

    static func eventRows(of tenant: TenantID, in url: DatabaseURL) async throws -> Int64 {
        try await count("SELECT count(*) FROM events WHERE tenant_id = \(tenant)", in: url)
    }

    static func databaseExists(_ name: String, on url: DatabaseURL) async throws -> Bool {
        try await count("SELECT count(*) FROM pg_database WHERE datname = \(name)", in: url) == 1
    }

    static func unattachedLog(of tenant: TenantID, in url: DatabaseURL) async throws -> Bool {
        let name = "events_t_" + tenant.description.replacingOccurrences(of: "-", with: "")
        return try await count("SELECT count(*)::int8 FROM pg_class c WHERE c.oid = to_regclass(\(name)) AND NOT c.relispartition", in: url) == 1
    }

    static func schemas(of tenant: TenantID, in url: DatabaseURL) async throws -> [String] {
        let home = "t_" + tenant.description.replacingOccurrences(of: "-", with: "")
        return try await url.withConnection(logger: TestCluster.logger) { connection in
            try await connection.query("SELECT nspname::text FROM pg_namespace WHERE nspname = \(home) OR nspname LIKE \(home + "\\_%")",
                                       logger: TestCluster.logger).decode(String.self).reduce(into: []) { $0.append($1) }
        }
    }

    /// The tenant's rows in the shared tables of every per-tenant projection version.
    static func sharedReadModelRows(of tenant: TenantID, in url: DatabaseURL) async throws -> Int64 {
        try await url.withConnection(logger: TestCluster.logger) { connection in
            var tables: [String] = []
            let rows = try await connection.query("""
                SELECT format('%I.%I', p.schema_name, t.name) FROM projections p, unnest(p.tables) AS t(name) WHERE p.scope = 'tenant'
                """, logger: TestCluster.logger)
            for try await table in rows.decode(String.self) { tables.append(table) }
            var total: Int64 = 0
            for table in tables {
                // The table names come from the catalog of projections, not from input.
                total += try await connection.query(PostgresQuery(unsafeSQL: "SELECT count(*) FROM \(table) WHERE tenant_id = '\(tenant)'"),
                                                    logger: TestCluster.logger).decode(Int64.self).first(where: { _ in true }) ?? 0
            }
            return total
        }
    }

    private static func count(_ query: PostgresQuery, in url: DatabaseURL) async throws -> Int64 {
        try await url.withConnection(logger: TestCluster.logger) { connection in
            try await connection.query(query, logger: TestCluster.logger).decode(Int64.self).first(where: { _ in true }) ?? 0
        }
    }
}
