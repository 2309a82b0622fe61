import Database
import Foundation
import PetstoreTesting
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The database goes away under load and comes back: a cluster of the test's own, stopped and
/// started for real, under a real `petstore serve`.
@Suite(.serialized) struct OutageTests {
    struct Outcome: Sendable {
        let status: Int
        let seconds: Double
        let complete: Bool
        let problem: Bool
        let retryAfter: Bool
        /// The problem's detail, to say why a request was refused.
        let detail: String
    }

    final class Recorder: Sendable {
        let outcomes = Mutex<[Outcome]>([])
        let running = Atomic<Bool>(true)
    }

    static func post(port: Int, key: String, slug: String, name: String) async -> Outcome {
        let body = Array(#"{"name":"\#(name)","species":"dog"}"#.utf8)
        let head = "POST /api/pets HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer \(key)\r\nX-Tenant-ID: \(slug)\r\n"
            + "Content-Type: application/json\r\nContent-Length: \(body.count)\r\n\r\n"
        let start = ContinuousClock.now
        let exchange = await HTTPProbe.exchange(port: port, request: Array(head.utf8) + body, timeout: .seconds(20))
        let elapsed = ContinuousClock.now - start
        return Outcome(
            status: exchange?.status ?? 0,
            seconds: Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18,
            complete: exchange?.complete ?? false,
            problem: exchange?.header("Content-Type") == ["application/problem+json"],
            retryAfter: !(exchange?.header("Retry-After").isEmpty ?? true),
            detail: exchange.map { String(decoding: $0.body, as: UTF8.self) } ?? ""
        )
    }

    @Test func `with PostgreSQL stopped under load every request is answered in bounded time, service returns without a restart, and SIGTERM in an outage exits`() async throws {
        let directory = FileManager.default.temporaryDirectory.appending(path: "petstore-outage-\(UUID().uuidString.prefix(8))")
        let cluster = try await LocalCluster(directory: directory, settings: TestCluster.fastSettings, logger: TestCluster.logger).start()
        defer { cluster.destroy() }
        var environment = ProcessInfo.processInfo.environment
        environment["DATABASE_URL"] = cluster.ownerURL.connectionString
        environment.removeValue(forKey: "APP_DATABASE_URL")

        let port = try LocalCluster.freePort()
        let server = try ChildProcess.spawn(
            [ServeCommandTests.binary, "serve", "--port", "\(port)", "--host", "127.0.0.1", "--data-dir", directory.appending(path: "server").path,
             "--request-timeout", "2s", "--connection-wait-timeout", "1s", "--shutdown-timeout", "3s", "--rate-limits", "off", "--log-level", "warning"],
            environment: environment)
        defer {
            server.signal(SIGKILL)
            server.waitBlocking()
        }
        let ready = await HTTPProbe.waitUntilReady(port: port) { server.exitStatus() != nil }
        try #require(ready == 200, "not ready: \(server.output)")
        let onboard = try ChildProcess.spawn(
            [ServeCommandTests.binary, "tenant", "create", "--slug", "outage", "--name", "Outage", "--plan", "enterprise", "--placement", "schema", "--log-level", "error"],
            environment: environment)
        #expect(await onboard.wait() == 0, "\(onboard.output)")
        let key = String(try #require(onboard.output.firstMatch(of: /psk_\S+/)).0)
        #expect(await Self.post(port: port, key: key, slug: "outage", name: "Before").status == 201)

        // Four clients post in a loop while the database stops for five seconds and comes back.
        let recorder = Recorder()
        let clients = (0..<4).map { client in
            Task.detached {
                var count = 0
                while recorder.running.load(ordering: .relaxed) {
                    count += 1
                    let outcome = await Self.post(port: port, key: key, slug: "outage", name: "C\(client)-\(count)")
                    recorder.outcomes.withLock { $0.append(outcome) }
                }
            }
        }
        try await Task.sleep(for: .seconds(1))
        cluster.stop()
        try await Task.sleep(for: .seconds(5))
        let duringOutage = recorder.outcomes.withLock { $0 }
        try cluster.restart()
        var recovered = false
        for _ in 0..<60 where !recovered {
            try await Task.sleep(for: .milliseconds(500))
            recovered = recorder.outcomes.withLock { $0.suffix(4).contains { $0.status == 201 } }
        }
        recorder.running.store(false, ordering: .relaxed)
        for client in clients { await client.value }
        let outcomes = recorder.outcomes.withLock { $0 }

        #expect(server.exitStatus() == nil, "the server lived through the outage")
        #expect(recovered, "requests succeed again after PostgreSQL is back, without a restart: \(outcomes.suffix(8).map { "\($0.status) \($0.detail)" }) \(server.output.suffix(60000))")
        let unanswered = outcomes.filter { !$0.complete }
        #expect(unanswered.isEmpty, "every request got a whole answer: \(unanswered)")
        #expect(Set(outcomes.map(\.status)).isSubset(of: [201, 503]), "only 201 or 503: \(Set(outcomes.map(\.status)))")
        let refused = outcomes.filter { $0.status == 503 }
        #expect(refused.count >= 4, "the outage was met: \(refused.count) answers of 503")
        let plain = refused.filter { !$0.problem || !$0.retryAfter }
        #expect(plain.isEmpty, "503s are problem+json with Retry-After")
        // The deadline is 2 s; a slow machine gets room, a hang does not (the client waits 20 s).
        let slowest = duringOutage.map(\.seconds).max() ?? 0
        #expect(slowest < 6, "the slowest answer during the outage took \(slowest) s")

        // Every 201 is in the log: nothing answered as done was lost.
        let created = outcomes.filter { $0.status == 201 }.count + 1
        let logged: Int
        do {
            logged = try await cluster.superuserURL.with(database: LocalCluster.databaseName).withConnection(logger: TestCluster.logger) { connection in
                try await connection.query("SELECT count(*) FROM events WHERE event_type = 'PetRegistered'", logger: TestCluster.logger)
                    .collect().first?.decode(Int.self) ?? 0
            }
        } catch {
            Issue.record("counting the log: \(String(reflecting: error))")
            logged = -1
        }
        #expect(logged >= created, "\(logged) registrations logged, \(created) answered 201")

        // The database goes away again, and the operator stops the server.
        cluster.stop()
        _ = await Self.post(port: port, key: key, slug: "outage", name: "Lost")
        let stopping = ContinuousClock.now
        server.signal(SIGTERM)
        var exited: Int32?
        for _ in 0..<300 where exited == nil {
            try await Task.sleep(for: .milliseconds(100))
            exited = server.exitStatus()
        }
        #expect(exited != nil, "the server exits after SIGTERM in an outage: \(server.output.suffix(2000))")
        #expect(ContinuousClock.now - stopping < .seconds(20))
        try cluster.restart()
    }
}
