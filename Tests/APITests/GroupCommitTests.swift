import API
import Database
import EventLog
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import PetstoreTesting
import PostgresNIO
import Testing

/// Commands of concurrent requests commit in groups (`CommitGroups`): the log's invariants hold
/// on that path, a failing command fails alone, and groups do form (events of several commands
/// share a transaction id).
@Suite struct GroupCommitTests {
    struct Call: Sendable {
        let method: HTTPRequest.Method
        let uri: String
        let json: String?
        let extra: HTTPFields
        let tenant: TenantClient
    }

    /// Sends every call at once, each on a connection of its own.
    static func concurrently(_ calls: [Call], port: Int) async throws -> [SentResponse] {
        try await withThrowingTaskGroup(of: (Int, SentResponse).self) { group in
            for (index, call) in calls.enumerated() {
                group.addTask {
                    try await TestClient.withClient(host: "127.0.0.1", port: port) { connection in
                        var fields = headers(call.tenant.key, tenant: call.tenant.slug)
                        if call.json != nil { fields[.contentType] = "application/json" }
                        for field in call.extra { fields[field.name] = field.value }
                        let response = try await connection.execute(TestClient.Request(
                            call.uri, method: call.method, headers: fields, body: call.json.map { ByteBuffer(string: $0) }))
                        return (index, SentResponse(status: response.status, headers: response.headers, body: response.body ?? ByteBuffer()))
                    }
                }
            }
            var responses = [SentResponse?](repeating: nil, count: calls.count)
            for try await (index, response) in group { responses[index] = response }
            return responses.compactMap { $0 }
        }
    }

    /// The tenant's events as stored: seq and type.
    static func stored(_ app: TestApp, slug: String) async throws -> [(seq: Int64, type: String)] {
        let tenant = try #require(try await app.catalog.tenant(slug: slug)).id
        return try await app.dataURL(of: slug).withConnection(logger: TestCluster.logger) { connection in
            let rows = try await connection.query(
                "SELECT seq, event_type FROM events WHERE tenant_id = \(tenant) ORDER BY seq", logger: TestCluster.logger)
            var events: [(Int64, String)] = []
            for try await row in rows.decode((Int64, String).self) { events.append(row) }
            return events.map { (seq: $0.0, type: $0.1) }
        }
    }

    /// `--commit-lanes 0`: commands commit alone, the way a tenant in a database of its own does,
    /// under the same concurrent load that forms groups above.
    @Test func `with no commit lanes concurrent commands each commit alone, every write readable`() async throws {
        try await withApp(.live, poolSize: 20, placement: "shared", commitLanes: 0) { app, client in
            let port = try #require(client.port)
            var tenants: [TenantClient] = []
            for slug in ["alone-a", "alone-b"] { tenants.append(try await app.tenantClient(client, slug: slug)) }
            let before = app.store.database.groupCommits
            let calls = tenants.flatMap { tenant in
                (0..<12).map { _ in Call(method: .post, uri: "/api/pets", json: #"{"name":"Solo","species":"dog"}"#, extra: [:], tenant: tenant) }
            }
            let responses = try await Self.concurrently(calls, port: port)
            #expect(responses.count == calls.count)
            for (call, response) in zip(calls, responses) {
                #expect(response.status == .created, "\(String(buffer: response.body))")
                let id = try #require(try call.tenant.object(response)["id"] as? String)
                #expect(try await call.tenant.call(.get, "/api/pets/\(id)").status == .ok)
            }
            let after = app.store.database.groupCommits
            #expect(after.commands == before.commands && after.groups == before.groups, "no command went through a group: \(before) -> \(after)")
            for tenant in tenants {
                let events = try await Self.stored(app, slug: tenant.slug)
                #expect(events.map(\.seq) == Array(1...Int64(events.count)), "seq is gap-free from 1")
            }
        }
    }

    @Test(arguments: Placements.all) func `concurrent commands of several tenants commit in groups: every write readable, every log gap-free and valid`(placement: String) async throws {
        try await withApp(.live, poolSize: 20, placement: placement) { app, client in
            let port = try #require(client.port)
            var tenants: [TenantClient] = []
            for slug in ["group-a", "group-b", "group-c"] { tenants.append(try await app.tenantClient(client, slug: slug)) }
            var created: [String: [String]] = [:]
            let before = app.store.database.groupCommits
            var shared = 0
            // Groups form whenever commands arrive while one runs; a round where none did (a
            // machine that served them one by one) is run again, a few times at most.
            for round in 1...(placement == "database" ? 1 : 5) where shared == 0 {
                let calls = tenants.flatMap { tenant in
                    (0..<12).map { _ in Call(method: .post, uri: "/api/pets", json: #"{"name":"R\#(round)","species":"dog"}"#, extra: [:], tenant: tenant) }
                }
                let responses = try await Self.concurrently(calls, port: port)
                for (call, response) in zip(calls, responses) {
                    #expect(response.status == .created, "\(String(buffer: response.body))")
                    let id = try #require(try call.tenant.object(response)["id"] as? String)
                    created[call.tenant.slug, default: []].append(id)
                }
                let after = app.store.database.groupCommits
                // Commands that committed in a group with others: commands beyond one per commit.
                shared = (after.commands - before.commands) - (after.groups - before.groups)
            }
            if placement == "database" {
                #expect(shared == 0, "tenants in databases of their own run their commands alone")
            } else {
                #expect(shared > 0, "some commands committed in one transaction")
            }
            let metrics = String(buffer: try await send(client, "/metrics", .get, headers(app.platformKey)).body)
            #expect(metrics.contains("command_group_commands_total"), "the groups are counted in the metrics")
            for tenant in tenants {
                let events = try await Self.stored(app, slug: tenant.slug)
                #expect(events.map(\.seq) == Array(1...Int64(events.count)), "seq is gap-free from 1")
                let id = try #require(try await app.catalog.tenant(slug: tenant.slug)).id
                #expect(try await app.store.verify(tenant: id).valid)
                for pet in created[tenant.slug] ?? [] {
                    #expect(try await tenant.call(.get, "/api/pets/\(pet)").status == .ok)
                }
                #expect(events.filter { $0.type == "PetRegistered" }.count == (created[tenant.slug]?.count ?? 0) + 1,
                        "each acknowledged POST once, beside onboarding's sample pet")
            }
        }
    }

    @Test(arguments: Placements.all) func `in a group a failing command fails alone, and concurrent updates with one If-Match apply once`(placement: String) async throws {
        try await withApp(.live, poolSize: 20, placement: placement) { app, client in
            let port = try #require(client.port)
            let tenant = try await app.tenantClient(client, slug: "group-mixed")
            let taken = try await tenant.register("Taken")
            let target = try await tenant.register("Target")
            let before = try await Self.stored(app, slug: tenant.slug).count
            let valid = (0..<12).map { Call(method: .post, uri: "/api/pets", json: #"{"name":"Fine \#($0)","species":"cat"}"#, extra: [:], tenant: tenant) }
            let duplicates = (0..<4).map { _ in
                Call(method: .post, uri: "/api/pets", json: #"{"id":"\#(taken)","name":"Twin","species":"dog"}"#, extra: [:], tenant: tenant)
            }
            let updates = (0..<8).map {
                Call(method: .patch, uri: "/api/pets/\(target)", json: #"{"name":"Renamed \#($0)"}"#, extra: [.ifMatch: "\"1\""], tenant: tenant)
            }
            let calls = valid + duplicates + updates
            let responses = try await Self.concurrently(calls, port: port)
            let statuses = responses.map(\.status)
            #expect(statuses[0..<12].allSatisfy { $0 == .created }, "\(statuses)")
            #expect(statuses[12..<16].allSatisfy { $0 == .conflict }, "\(statuses)")
            let updated = statuses[16...].filter { $0 == .ok }.count
            #expect(updated == 1, "exactly one update with If-Match 1 applies: \(statuses[16...])")
            #expect(statuses[16...].allSatisfy { $0 == .ok || $0 == .preconditionFailed })
            for response in responses[0..<12] {
                let id = try #require(try tenant.object(response)["id"] as? String)
                #expect(try await tenant.call(.get, "/api/pets/\(id)").status == .ok)
            }
            let shown = try tenant.object(try await tenant.call(.get, "/api/pets/\(target)"))
            #expect(shown["version"] as? Int == 2)
            let events = try await Self.stored(app, slug: tenant.slug)
            #expect(events.count == before + 12 + 1, "the failed commands appended nothing")
            #expect(events.map(\.seq) == Array(1...Int64(events.count)))
            let id = try #require(try await app.catalog.tenant(slug: tenant.slug)).id
            #expect(try await app.store.verify(tenant: id).valid)
        }
    }

    /// A request cut off while its command waits for a turn in a commit group must not wait on:
    /// nobody is answered from that wait, and it would keep holding the request's slot.
    @Test func `a grouped command cancelled while another holds the group's turn leaves at once and appends nothing`() async throws {
        try await withApp(.router, placement: "shared") { app, client in
            _ = try await app.tenantClient(client, slug: "group-wait")
            let tenant = try #require(try await app.catalog.tenant(slug: "group-wait")).id
            let database = app.store.database
            _ = try await database.home(of: tenant)
            let before = try await app.store.read(tenant: tenant).count
            let (turns, turnTaken) = AsyncStream.makeStream(of: Void.self)
            let (releases, release) = AsyncStream.makeStream(of: Void.self)
            let append: @Sendable (TenantSession, String) async throws -> Void = { session, name in
                _ = try await app.store.append([StreamAppend(stream: try StreamName(type: "pet", id: UUID()), expected: .any,
                                                             events: [try NewEvent(type: "Tick", data: .object(["name": .string(name)]))])],
                                               metadata: .init(), in: session)
            }
            let holder = Task {
                try await database.withTenant(tenant, grouped: true) { session in
                    turnTaken.yield()
                    for await _ in releases { break }
                    try await append(session, "held")
                }
            }
            for await _ in turns { break }
            let waiter = Task {
                try await database.withTenant(tenant, grouped: true) { session in try await append(session, "cancelled") }
            }
            try await Task.sleep(for: .milliseconds(200))
            waiter.cancel()
            // The holder keeps its turn until released: only a waiter that left the group returns.
            let left = await withTaskGroup(of: Bool.self) { race in
                race.addTask { _ = await waiter.result; return true }
                race.addTask { try? await Task.sleep(for: .seconds(20)); return false }
                defer { race.cancelAll() }
                return await race.next() ?? false
            }
            #expect(left, "the cancelled command returned while the group's turn was still held")
            release.yield()
            try await holder.value
            await #expect(throws: CancellationError.self) { try await waiter.value }
            let names = try await app.store.read(tenant: tenant).dropFirst(before).map { $0.data["name"]?.stringValue }
            #expect(names == ["held"], "the cancelled command appended nothing")
        }
    }
}
