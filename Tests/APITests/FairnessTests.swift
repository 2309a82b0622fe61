import API
import Database
import Foundation
import Hummingbird
import HummingbirdTesting
import Operations
import PetstoreTesting
import PostgresNIO
import Testing

/// One tenant's stalled requests hold at most their share of the request pool.
@Suite struct FairnessTests {
    static func request(port: Int, _ method: String, _ path: String, key: String, slug: String, body: String? = nil) async -> HTTPProbe.Exchange? {
        let bytes = Array((body ?? "").utf8)
        var head = "\(method) \(path) HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer \(key)\r\nX-Tenant-ID: \(slug)\r\n"
        if body != nil { head += "Content-Type: application/json\r\n" }
        head += "Content-Length: \(bytes.count)\r\n\r\n"
        return await HTTPProbe.exchange(port: port, request: Array(head.utf8) + bytes, timeout: .seconds(15))
    }

    @Test func `a tenant whose commands stall on a lock cannot take the connections another tenant needs`() async throws {
        // Pool of 8, half per tenant; no statement or lock timeouts, so stalled requests hold on.
        let configuration = ServerConfiguration(requestTimeout: .seconds(60), connectionWaitTimeout: .seconds(1), tenantPoolShare: 0.5)
        try await withApp(.live, poolSize: 8, configuration: configuration) { app, client in
            let port = try #require(client.port)
            let stalled = try await app.tenantClient(client, slug: "stalled")
            let calm = try await app.tenantClient(client, slug: "calm")
            _ = try await calm.register("Before")
            let stalledID = try #require(try await app.catalog.tenant(slug: "stalled")?.id)

            // Hold the stalled tenant's log head: every command of that tenant waits for it.
            // A superuser pool that stays the superuser (pools are the application role otherwise).
            var superuser = app.database.superuserURL.clientConfiguration(maximumConnections: 1)
            superuser.options.additionalStartupParameters.removeAll { $0.0 == "role" }
            let lock = PostgresClient(configuration: superuser, backgroundLogger: TestCluster.logger)
            let lockRun = Task { await lock.run() }
            defer { lockRun.cancel() }
            let held = AsyncStream.makeStream(of: Void.self)
            let release = AsyncStream.makeStream(of: Void.self)
            let holder = Task {
                try await lock.withTransaction(logger: TestCluster.logger) { connection in
                    try await connection.query("SELECT 1 FROM event_heads WHERE tenant_id = \(stalledID.rawValue) FOR UPDATE",
                                               logger: TestCluster.logger).consume()
                    held.continuation.yield()
                    for await _ in release.stream { break }
                }
            }
            for await _ in held.stream { break }

            let stalledRequests = Task {
                await withTaskGroup(of: HTTPProbe.Exchange?.self) { group in
                    for index in 0..<20 {
                        group.addTask {
                            await Self.request(port: port, "POST", "/api/pets", key: stalled.key, slug: "stalled",
                                               body: #"{"name":"Stuck \#(index)","species":"cat"}"#)
                        }
                    }
                    return await group.reduce(into: []) { $0.append($1) }
                }
            }
            // The stalled tenant's requests are in; now the other tenant works as usual.
            try await Task.sleep(for: .milliseconds(300))
            // In waves of its own share (4), so what is measured is the stalled tenant's effect on
            // it, not its own queue: twelve at once would wait on each other on a loaded machine.
            var calmAnswers: [HTTPProbe.Exchange?] = []
            for wave in 0..<3 {
                calmAnswers += await withTaskGroup(of: HTTPProbe.Exchange?.self) { group in
                    for index in (wave * 4)..<(wave * 4 + 4) {
                        group.addTask {
                            index.isMultiple(of: 2)
                                ? await Self.request(port: port, "GET", "/api/pets", key: calm.key, slug: "calm")
                                : await Self.request(port: port, "POST", "/api/pets", key: calm.key, slug: "calm",
                                                     body: #"{"name":"Calm \#(index)","species":"dog"}"#)
                        }
                    }
                    return await group.reduce(into: []) { $0.append($1) }
                }
            }
            // Held past the connection wait, so the requests over the share give up.
            try await Task.sleep(for: .seconds(2))
            release.continuation.yield()
            try await holder.value
            let stalledAnswers = await stalledRequests.value

            let calmStatuses = calmAnswers.map { $0?.status ?? 0 }
            #expect(calmStatuses.allSatisfy { (200..<300).contains($0) }, "the other tenant is served while one stalls: \(calmStatuses)")
            let stalledStatuses = stalledAnswers.map { $0?.status ?? 0 }
            #expect(Set(stalledStatuses).isSubset(of: [201, 503]), "\(stalledStatuses)")
            let refused = stalledAnswers.compactMap { $0 }.filter { $0.status == 503 }
            #expect(refused.count >= 20 - 4, "past its share of 4, the stalled tenant's requests are refused: \(stalledStatuses)")
            for answer in refused {
                #expect(answer.header("Content-Type") == ["application/problem+json"])
                #expect(answer.header("Retry-After") == ["1"])
            }
            let created = stalledStatuses.filter { $0 == 201 }.count
            #expect(created >= 1, "the requests that held a share complete once the lock is gone")
            #expect(try await app.events(of: "PetRegistered", tenant: "stalled").count == 1 + created,
                    "a refused request changed nothing (the sample pet is the 1)")
        }
    }

    @Test func `a lock wait past the lock timeout is a 503 that changed nothing, and the tenant works again after`() async throws {
        try await withApp(.live, timeouts: StatementTimeouts(statement: .seconds(3), lock: .milliseconds(300))) { app, client in
            let port = try #require(client.port)
            let tenant = try await app.tenantClient(client, slug: "locked-out")
            let tenantID = try #require(try await app.catalog.tenant(slug: "locked-out")?.id)
            let before = try await app.events(of: "PetRegistered", tenant: "locked-out").count
            let answer = try await app.database.superuserURL.withConnection(logger: TestCluster.logger) { connection in
                try await connection.query("BEGIN", logger: TestCluster.logger).consume()
                try await connection.query("SELECT 1 FROM event_heads WHERE tenant_id = \(tenantID.rawValue) FOR UPDATE",
                                           logger: TestCluster.logger).consume()
                let answer = await Self.request(port: port, "POST", "/api/pets", key: tenant.key, slug: "locked-out",
                                                body: #"{"name":"Waits","species":"cat"}"#)
                try await connection.query("ROLLBACK", logger: TestCluster.logger).consume()
                return answer
            }
            let refused = try #require(answer)
            #expect(refused.status == 503)
            #expect(refused.header("Content-Type") == ["application/problem+json"])
            #expect(refused.header("Retry-After") == ["1"])
            #expect(String(decoding: refused.body, as: UTF8.self).contains("timed out"))
            #expect(try await app.events(of: "PetRegistered", tenant: "locked-out").count == before, "nothing was appended")
            let after = await Self.request(port: port, "POST", "/api/pets", key: tenant.key, slug: "locked-out",
                                           body: #"{"name":"Later","species":"cat"}"#)
            #expect(after?.status == 201)
        }
    }

    @Test func `a command past the request deadline is answered 503 at once, and its retry with the Idempotency-Key lands exactly once`() async throws {
        try await withApp(.live) { app, client in
            let tenant = try await app.tenantClient(client, slug: "deadline")
            // The same dependencies behind a second server whose deadline is one second; the
            // tenant was onboarded above, where a busy machine cannot make onboarding meet it.
            let tight = Application(
                responder: ApplicationBuilder.responder(app.dependencies, configuration: ServerConfiguration(requestTimeout: .seconds(1))),
                logger: TestCluster.logger)
            try await tight.test(.live) { tightClient in
                let port = try #require(tightClient.port)
                let tenantID = try #require(try await app.catalog.tenant(slug: "deadline")?.id)
                let before = try await app.events(of: "PetRegistered", tenant: "deadline").count
                let body = #"{"name":"Late","species":"cat"}"#
                func keyed() async -> HTTPProbe.Exchange? {
                    let bytes = Array(body.utf8)
                    let head = "POST /api/pets HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer \(tenant.key)\r\nX-Tenant-ID: deadline\r\n"
                        + "Idempotency-Key: late-1\r\nContent-Type: application/json\r\nContent-Length: \(bytes.count)\r\n\r\n"
                    return await HTTPProbe.exchange(port: port, request: Array(head.utf8) + bytes, timeout: .seconds(15))
                }
                let (answer, waited) = try await app.database.superuserURL.withConnection(logger: TestCluster.logger) { connection in
                    try await connection.query("BEGIN", logger: TestCluster.logger).consume()
                    try await connection.query("SELECT 1 FROM event_heads WHERE tenant_id = \(tenantID.rawValue) FOR UPDATE",
                                               logger: TestCluster.logger).consume()
                    let start = ContinuousClock.now
                    let answer = await keyed()
                    let waited = ContinuousClock.now - start
                    try await connection.query("ROLLBACK", logger: TestCluster.logger).consume()
                    return (answer, waited)
                }
                let cutOff = try #require(answer)
                #expect(cutOff.status == 503)
                #expect(cutOff.header("Retry-After") == ["1"])
                #expect(String(decoding: cutOff.body, as: UTF8.self).contains("Idempotency-Key"), "the answer says how to find out")
                #expect(waited < .seconds(10), "answered at the deadline, not when the lock went: \(waited)")

                // The retry gets the command's outcome; whichever way the first attempt went, it lands once.
                var retried: HTTPProbe.Exchange?
                for _ in 0..<50 {
                    retried = await keyed()
                    if retried?.status != 409 { break }
                    try await Task.sleep(for: .milliseconds(100))
                }
                #expect(retried?.status == 201, "\(retried.map { String(decoding: $0.body, as: UTF8.self) } ?? "no answer")")
                #expect(try await app.events(of: "PetRegistered", tenant: "deadline").count == before + 1)
            }
        }
    }
}
