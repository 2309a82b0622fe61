import API
import Database
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import Operations
import PetstoreTesting
import Synchronization
import Tenancy
import Testing

/// One sample of the Prometheus text format.
struct Sample: Equatable, CustomStringConvertible {
    let name: String
    let labels: [String: String]
    let value: Double

    var description: String { "\(name)\(labels.sorted { $0.key < $1.key }) \(value)" }

    static func parse(_ text: String) -> [Sample] {
        text.split(separator: "\n").compactMap { line -> Sample? in
            guard !line.hasPrefix("#"), let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else { return nil }
            let series = line[..<space]
            guard let open = series.firstIndex(of: "{") else { return Sample(name: String(series), labels: [:], value: value) }
            var labels: [String: String] = [:]
            for match in series[open...].matches(of: /([a-z_]+)="([^"]*)"/) { labels[String(match.1)] = String(match.2) }
            return Sample(name: String(series[..<open]), labels: labels, value: value)
        }
    }
}

extension [Sample] {
    func value(_ name: String, _ labels: [String: String]) -> Double? {
        first { sample in sample.name == name && labels.allSatisfy { sample.labels[$0.key] == $0.value } }?.value
    }

    func values(_ name: String) -> [Sample] { filter { sample in sample.name == name } }
}

/// Log lines written by the app, for tests to read.
final class CapturedLines: Sendable {
    let lines = Mutex<[String]>([])

    var logger: Logger {
        Logger(label: "petstore") { [self] label in
            var handler = JSONLogHandler(label: label) { data in self.lines.withLock { $0.append(String(decoding: data, as: UTF8.self)) } }
            handler.logLevel = .info
            return handler
        }
    }

    var objects: [[String: String]] {
        lines.withLock { $0 }.compactMap { line in try? JSONDecoder().decode([String: String].self, from: Data(line.utf8)) }
    }
}

@Suite struct MetricsTests {
    func scrape(_ app: TestApp, _ client: some TestClientProtocol) async throws -> [Sample] {
        let response = try await send(client, "/metrics", .get, [.authorization: "Bearer \(app.platformKey)"])
        #expect(response.status == .ok)
        #expect(response.headers[.contentType]?.hasPrefix("text/plain; version=0.0.4") == true)
        return Sample.parse(String(buffer: response.body))
    }

    @Test func `a scrape after known traffic shows it by tenant, route template, method and status`() async throws {
        try await QuotaWindows.clearOfHourTurn()
        try await withApp(.router, rateLimits: try RateLimits.defaults.overridden(by: "basic=2/h+100")) { app, client in
            let shop = try await app.tenantClient(client, slug: "metered")
            let id = try await shop.register("Rex")
            _ = try await shop.register("Fido")
            for _ in 0..<3 { #expect(try await shop.call(.get, "/api/pets/\(id)").status == .ok) }
            #expect(try await shop.call(.get, "/api/pets/\(UUID())").status == .notFound)

            let limited = TenantClient(client: client, key: try await app.onboard(client, slug: "throttled", plan: "basic"), slug: "throttled")
            for _ in 0..<4 { _ = try await limited.call(.get, "/api/pets") }

            let samples = try await scrape(app, client)
            let requests = "api_requests_total"
            #expect(samples.value(requests, ["tenant": "metered", "endpoint": "/api/pets/{id}", "method": "GET", "status": "200"]) == 3)
            #expect(samples.value(requests, ["tenant": "metered", "endpoint": "/api/pets/{id}", "method": "GET", "status": "404"]) == 1)
            #expect(samples.value(requests, ["tenant": "metered", "endpoint": "/api/pets", "method": "POST", "status": "201"]) == 2)
            #expect(samples.value(requests, ["tenant": "throttled", "endpoint": "/api/pets", "method": "GET", "status": "429"]) == 2)
            #expect(!samples.values(requests).contains { $0.labels["endpoint"]?.contains(id) == true }, "no raw ids in endpoints")

            let durations = samples.value("api_request_duration_seconds_count", ["tenant": "metered", "endpoint": "/api/pets/{id}"])
            #expect(durations == 4)
            #expect(samples.value("rate_limited_requests_total", ["tenant": "throttled"]) == 2)
            #expect(samples.value("rate_limited_requests_total", ["tenant": "metered"]) == nil)
            // The sample pet from onboarding and the two registered here.
            #expect(samples.value("events_appended_total", ["tenant": "metered", "type": "PetRegistered"]) == 3)
            #expect(samples.value("events_appended_total", ["tenant": "metered", "type": "TenantCreated"]) == 1)

            let pets = samples.values("projection_position_events").filter { $0.labels["projection"] == "pets" && $0.labels["state"] == "active" }
            #expect(pets.count == 1)
            #expect((pets.first?.value ?? 0) >= 2)
            #expect(samples.value("projection_lag_events", ["projection": "pets", "state": "active"]) != nil)
            #expect(samples.value("projection_lag_seconds_count", ["projection": "pets"]) ?? 0 >= 1)
            let pool = samples.values("db_pool_connections")
            #expect(pool.contains { $0.labels["state"] == "active" && $0.value >= 1 }, "the scrape's own connection is in use")
            #expect(samples.values("db_pool_max_connections").first?.value == 8)
        }
    }

    @Test func `tenants beyond the label cap are counted together as other`() async throws {
        try await withApp(.router, tenantLabelCap: 2) { app, client in
            var tenants: [TenantClient] = []
            for slug in ["cap-a", "cap-b", "cap-c", "cap-d"] {
                let tenant = try await app.tenantClient(client, slug: slug)
                #expect(try await tenant.call(.get, "/api/pets").status == .ok)
                tenants.append(tenant)
            }
            let samples = try await scrape(app, client)
            let labels = Set(samples.values("api_requests_total").compactMap { $0.labels["tenant"] })
            #expect(labels.subtracting(["none"]).count == 3, "\(labels)")
            #expect(labels.contains("other"))
            #expect(samples.value("api_requests_total", ["tenant": "other", "endpoint": "/api/pets", "method": "GET"]) == 2)
            let eventLabels = Set(samples.values("events_appended_total").compactMap { $0.labels["tenant"] })
            #expect(eventLabels.isSubset(of: labels), "\(eventLabels)")
        }
    }

    @Test func `metrics are for platform admins only`() async throws {
        try await withApp(.router) { app, client in
            let tenant = try await app.tenantClient(client, slug: "nosy")
            #expect(try await send(client, "/metrics", .get, [:]).status == .unauthorized)
            #expect(try await send(client, "/metrics", .get, [.authorization: "Bearer \(tenant.key)"]).status == .forbidden)
        }
    }
}

@Suite struct RequestLogTests {
    @Test func `each request is one JSON line with id, tenant, principal, route, status and duration, and no key or body`() async throws {
        let captured = CapturedLines()
        try await withApp(.live, logger: captured.logger) { app, client in
            let tenant = try await app.tenantClient(client, slug: "logged")
            let response = try await tenant.call(.post, "/api/pets", json: #"{"name":"Sekrit-Name-123","species":"dog"}"#,
                                                 extra: [HTTPField.Name("X-Request-ID")!: "trace-abc-123"])
            #expect(response.status == .created)
            #expect(response.headers[HTTPField.Name("X-Request-ID")!] == "trace-abc-123")
            let generated = try await tenant.call(.get, "/api/pets")
            let generatedID = try #require(generated.headers[HTTPField.Name("X-Request-ID")!])
            #expect(UUID(uuidString: generatedID) != nil)

            try await Task.sleep(for: .milliseconds(100))
            let requests = captured.objects.filter { $0["message"] == "request" }
            let line = try #require(requests.first { $0["request_id"] == "trace-abc-123" })
            #expect(line["tenant"] == "logged")
            #expect(line["principal"]?.hasPrefix("user:") == true)
            #expect(line["route"] == "/api/pets")
            #expect(line["method"] == "POST")
            #expect(line["status"] == "201")
            #expect(Double(line["duration_ms"] ?? "") != nil)
            #expect(requests.filter { $0["request_id"] == "trace-abc-123" }.count == 1, "one line per request")
            #expect(requests.contains { $0["request_id"] == generatedID && $0["status"] == "200" })

            let everything = captured.lines.withLock { $0.joined() }
            #expect(!everything.contains(tenant.key), "API keys are never logged")
            #expect(!everything.contains(app.platformKey))
            #expect(!everything.contains("Sekrit-Name-123"), "bodies are never logged")
        }
    }

    @Test func `the text format writes a request's metadata on its line, sorted, and nothing for lines below the level`() async throws {
        let lines = Mutex<[String]>([])
        var logger = Logger(label: "petstore") { label in
            var handler = TextLogHandler(label: label) { line in lines.withLock { $0.append(line) } }
            handler.logLevel = .notice
            return handler
        }
        logger[metadataKey: "request_id"] = "trace-1"
        logger[metadataKey: "tenant"] = "logged"
        logger.info("request", metadata: ["status": "200"])
        #expect(lines.withLock { $0 }.isEmpty)
        logger.notice("request", metadata: ["status": "201"])
        let line = try #require(lines.withLock { $0 }.first)
        let pattern = #/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4} notice petstore: request_id=trace-1 status=201 tenant=logged \[\w+\] request\n$/#
        #expect(line.wholeMatch(of: pattern) != nil, "\(line)")
    }

    @Test func `an unexpected error is logged once, with its cause, and answered as an opaque 500`() async throws {
        let captured = CapturedLines()
        try await withApp(.router, logger: captured.logger, allowUnmappedErrors: true) { app, client in
            let tenant = try await app.tenantClient(client, slug: "broken")
            // Break the read model under the app: the pets list cannot be read.
            try await app.database.ownerURL.withConnection(logger: TestCluster.logger) { connection in
                try await connection.query("ALTER FUNCTION read_pets_v2(uuid, bigint, text, integer) RENAME TO read_pets_gone", logger: TestCluster.logger).consume()
            }
            let response = try await tenant.call(.get, "/api/pets", extra: [HTTPField.Name("X-Request-ID")!: "boom-1"])
            #expect(response.status == .internalServerError)
            #expect(!String(buffer: response.body).contains("does not exist"), "the cause stays in the log")
            let lines = captured.objects.filter { $0["request_id"] == "boom-1" }
            let errors = lines.filter { $0["level"] == "error" }
            #expect(errors.count == 1, "\(lines)")
            #expect(errors.first?["error"]?.contains("does not exist") == true, "\(errors)")
            #expect(lines.filter { $0["message"] == "request" && $0["status"] == "500" }.count == 1)
            #expect(app.unmapped.all.count == 1 && app.unmapped.all.first?.contains("read_pets") == true,
                    "a driver error is no module's error: it is recorded as unmapped, \(app.unmapped.all)")
        }
    }
}
