import Database
import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import PetstoreTesting
import Testing

/// Several `petstore serve` processes on one database, as a deployment runs them.
@Suite(.serialized) struct MultiProcessTests {
    /// Servers on `database`, stopped when `body` returns.
    func withServers(
        _ count: Int, on database: TestDatabase, environment extra: [String: String] = [:],
        _ body: ([Int], [ChildProcess]) async throws -> Void
    ) async throws {
        var servers: [(ChildProcess, Int, URL)] = []
        defer {
            for (child, _, directory) in servers {
                child.signal(SIGKILL)
                child.waitBlocking()
                try? FileManager.default.removeItem(at: directory)
            }
        }
        for _ in 0..<count {
            let directory = FileManager.default.temporaryDirectory.appending(path: "petstore-mp-\(UUID().uuidString.prefix(8))")
            let port = try LocalCluster.freePort()
            let child = try ChildProcess.spawn(
                [ServeCommandTests.binary, "serve", "--port", "\(port)", "--host", "127.0.0.1", "--data-dir", directory.path,
                 "--log-level", "warning"],
                environment: environment(database, extra))
            servers.append((child, port, directory))
        }
        for (child, port, _) in servers {
            let status = await HTTPProbe.waitUntilReady(port: port) { child.exitStatus() != nil }
            try #require(status == 200, "server on \(port) not ready: \(child.output)")
        }
        try await body(servers.map(\.1), servers.map(\.0))
    }

    func environment(_ database: TestDatabase, _ extra: [String: String] = [:]) -> [String: String] {
        var environment = ProcessInfo.processInfo.environment
        environment["DATABASE_URL"] = database.ownerURL.connectionString
        environment["APP_DATABASE_URL"] = database.appURL.connectionString
        // A deadline no parallel test run on two cores comes near; the outage tests set their own.
        environment["REQUEST_TIMEOUT"] = "60s"
        environment["CONNECTION_WAIT_TIMEOUT"] = "30s"
        environment.merge(extra) { _, new in new }
        return environment
    }

    /// Onboards a tenant with the CLI and returns its admin key.
    func tenant(_ slug: String, plan: String = "free", on database: TestDatabase) async throws -> String {
        let child = try ChildProcess.spawn(
            [ServeCommandTests.binary, "tenant", "create", "--slug", slug, "--name", slug, "--plan", plan, "--log-level", "error"],
            environment: environment(database))
        #expect(await child.wait() == 0, "\(child.output)")
        let line = try #require(child.output.split(separator: "\n").first { $0.contains("psk_") })
        return String(try #require(line.firstMatch(of: /psk_\S+/)).0)
    }

    static func request(
        port: Int, _ method: HTTPRequest.Method, _ path: String, key: String, slug: String, body: String? = nil, extra: HTTPFields = [:]
    ) async throws -> TestClient.Response {
        var fields: HTTPFields = [.authorization: "Bearer \(key)", HTTPField.Name("X-Tenant-ID")!: slug]
        if body != nil { fields[.contentType] = "application/json" }
        fields.append(contentsOf: extra)
        let request = TestClient.Request(path, method: method, headers: fields, body: body.map { ByteBuffer(string: $0) })
        return try await TestClient.withClient(host: "127.0.0.1", port: port) { client in
            try await client.execute(request)
        }
    }

    @Test func `three servers enforce one limit per tenant`() async throws {
        try await QuotaWindows.clearOfHourTurn()
        let database = try await TestCluster.shared.database()
        let key = try await tenant("shared-limit", on: database)
        try await withServers(3, on: database, environment: ["RATE_LIMITS": "free=5/h+5"]) { ports, _ in
            let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
                for index in 0..<60 {
                    group.addTask {
                        try await Self.request(port: ports[index % 3], .get, "/api/pets", key: key, slug: "shared-limit").status.code
                    }
                }
                return try await group.reduce(into: [Int]()) { $0.append($1) }
            }
            let accepted = statuses.filter { status in status == 200 }.count
            let limited = statuses.filter { status in status == 429 }.count
            // Within the few seconds this takes, 5 an hour refills nothing: the burst is all there is.
            #expect(accepted == 5, "\(statuses)")
            #expect(limited == 55, "\(statuses)")
        }
    }

    @Test func `three servers count one quota down exactly, and name the policy that refuses`() async throws {
        try await QuotaWindows.clearOfHourTurn()
        let database = try await TestCluster.shared.database()
        let key = try await tenant("shared-count", on: database)
        let limit = HTTPField.Name("X-RateLimit-Limit")!
        let remaining = HTTPField.Name("X-RateLimit-Remaining")!
        try await withServers(3, on: database, environment: ["RATE_LIMITS": "free=12/h+1000"]) { ports, _ in
            // One request after another, each to the next server: every answer is the shared count.
            var seen: [String] = []
            for index in 0..<12 {
                let response = try await Self.request(port: ports[index % 3], .get, "/api/pets", key: key, slug: "shared-count")
                #expect(response.status == .ok)
                #expect(response.headers[limit] == "12")
                seen.append(response.headers[remaining] ?? "-")
            }
            #expect(seen == (0..<12).map { "\(11 - $0)" }, "\(seen)")
            for port in ports {
                let refused = try await Self.request(port: port, .get, "/api/pets", key: key, slug: "shared-count")
                #expect(refused.status.code == 429)
                #expect(refused.headers[remaining] == "0")
                let body = String(buffer: refused.body ?? ByteBuffer())
                #expect(body.contains("\"policy\":\"hour\""), "\(body)")
            }
        }
    }

    @Test func `a server killed after the commit but before answering leaves a response that the retry gets`() async throws {
        let database = try await TestCluster.shared.database()
        let key = try await tenant("crash-retry", on: database)
        let body = #"{"name":"Phoenix","species":"bird"}"#
        let idempotency: HTTPFields = [HTTPField.Name("Idempotency-Key")!: "phoenix-1"]
        try await withServers(1, on: database, environment: ["PETSTORE_FAULT": "kill-after-idempotent-commit"]) { ports, children in
            await #expect(throws: (any Error).self, "the connection dies without an answer") {
                _ = try await Self.request(port: ports[0], .post, "/api/pets", key: key, slug: "crash-retry", body: body, extra: idempotency)
            }
            var exit: Int32?
            for _ in 0..<100 where exit == nil {
                try await Task.sleep(for: .milliseconds(100))
                exit = children[0].exitStatus()
            }
            #expect(exit == 128 + SIGKILL, "\(children[0].output)")
        }
        let committed = try await scalar(database.superuserURL,
                                         "SELECT count(*)::int FROM events WHERE event_type = 'PetRegistered' AND data->>'name' = 'Phoenix'", as: Int.self)
        #expect(committed == 1, "the command committed before the crash")
        let projected = try await scalar(database.superuserURL, "SELECT count(*)::int FROM pets WHERE name = 'Phoenix'", as: Int.self)
        #expect(projected == 1, "its read-model row committed with it: nothing after the commit is needed to read it")
        try await withServers(1, on: database) { ports, _ in
            let retry = try await Self.request(port: ports[0], .post, "/api/pets", key: key, slug: "crash-retry", body: body, extra: idempotency)
            #expect(retry.status == .created)
            #expect(retry.headers[HTTPField.Name("Idempotent-Replayed")!] == "true")
            let pet = String(buffer: retry.body ?? ByteBuffer())
            #expect(pet.contains("\"name\":\"Phoenix\""), "\(pet)")
            // And the pet it names is there to read.
            let location = try #require(retry.headers[.location])
            let read = try await Self.request(port: ports[0], .get, location, key: key, slug: "crash-retry")
            #expect(read.status == .ok)
        }
        let after = try await scalar(database.superuserURL,
                                     "SELECT count(*)::int FROM events WHERE event_type = 'PetRegistered' AND data->>'name' = 'Phoenix'", as: Int.self)
        #expect(after == 1, "still exactly one event")
    }

    @Test func `bad rate-limit configuration is refused at start-up`() async throws {
        for bad in ["free=0/h", "free=-1/h", "gold=5/h", "free=5/h+0", "free=5/h+5/fortnight"] {
            let child = try ChildProcess.spawn([ServeCommandTests.binary, "serve", "--rate-limits", bad, "--port", "1"],
                                               environment: ProcessInfo.processInfo.environment)
            #expect(await child.wait() != 0)
            #expect(child.output.contains("rate limits:"), "\(bad): \(child.output)")
        }
        let mode = try ChildProcess.spawn([ServeCommandTests.binary, "serve", "--rate-limit-failure", "sideways"],
                                          environment: ProcessInfo.processInfo.environment)
        #expect(await mode.wait() != 0)
        #expect(mode.output.contains("open or closed"))
    }
}
