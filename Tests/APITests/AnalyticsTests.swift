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
import Synchronization
import Tenancy
import Testing

extension TestApp {
    func analytics(_ client: some TestClientProtocol, _ query: String = "") async throws -> (SentResponse, AnalyticsReport?) {
        let response = try await send(client, "/api/admin/analytics" + query, .get, headers(platformKey))
        guard response.status == .ok else { return (response, nil) }
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        decoder.dateDecodingStrategy = .custom { decoder in
            let text = try decoder.singleValueContainer().decode(String.self)
            return Timestamps.parse(text) ?? .distantPast
        }
        return (response, try decoder.decode(AnalyticsReport.self, from: Data(buffer: response.body)))
    }

    /// Writes what the server holds in memory (security log, refusal counts) and projects every log.
    func settleAnalytics() async throws {
        await dependencies.securityLog.flush()
        await dependencies.rateLimitLedger?.flush()
        try await dependencies.runtime.catchUpAll()
    }
}

@Suite struct AnalyticsTests {
    /// Tight enough on premium that a handful of requests meets the limit; the other plans never do.
    static let limits = try! RateLimits.generous.overridden(by: "premium=1/h+3")

    @Test func `analytics equal the counts taken from the log for a generated multi-tenant workload`() async throws {
        try await QuotaWindows.clearOfHourTurn()
        try await withApp(rateLimits: Self.limits) { app, client in
            var random = SeededGenerator(seed: 20_261_129)
            let plans = ["free", "basic", "enterprise", "free"]
            var tenants: [TenantClient] = []
            // Every tenant here is on the main server's events table or a partition of it, so the
            // log can be counted in one query; database tenants have their own suite.
            for (index, plan) in plans.enumerated() {
                let placement = plan == "enterprise" ? "schema" : nil
                tenants.append(TenantClient(client: client, key: try await app.onboard(client, slug: "an-\(index)", plan: plan, placement: placement), slug: "an-\(index)"))
            }
            let limited = TenantClient(client: client, key: try await app.onboard(client, slug: "an-limited", plan: "premium"), slug: "an-limited")

            let species = ["dog", "cat", "rabbit", "parrot", "tortoise"]
            for tenant in tenants {
                var alive: [String] = []
                for step in 0..<Int.random(in: 12...24, using: &random) {
                    let roll = Int.random(in: 0..<10, using: &random)
                    if alive.isEmpty || roll < 5 {
                        alive.append(try await tenant.register("p\(step)", species: species.randomElement(using: &random)!))
                    } else if roll < 7 {
                        let id = alive.randomElement(using: &random)!
                        #expect(try await tenant.call(.patch, "/api/pets/\(id)", json: #"{"name":"n\#(step)"}"#).status == .ok)
                    } else if roll < 9 {
                        let id = alive.randomElement(using: &random)!
                        let next = species.randomElement(using: &random)!
                        #expect(try await tenant.call(.patch, "/api/pets/\(id)", json: #"{"species":"\#(next)"}"#).status == .ok)
                    } else {
                        let id = alive.remove(at: Int.random(in: 0..<alive.count, using: &random))
                        #expect(try await tenant.call(.delete, "/api/pets/\(id)").status.code == 204)
                    }
                }
            }

            // Refusals: every 429 the premium tenant gets is one the analytics must count.
            var refused = 0
            for _ in 0..<9 {
                if try await limited.call(.get, "/api/pets").status.code == 429 { refused += 1 }
            }
            #expect(refused >= 4, "the burst is 3, so most of nine requests are refused")

            // Cross-tenant attempts: a key of one tenant naming another.
            let attempts = [(0, 1), (0, 1), (0, 1), (2, 0), (2, 0)]
            for (actor, target) in attempts {
                let response = try await send(client, "/api/pets", .get, headers(tenants[actor].key, tenant: tenants[target].slug))
                #expect(response.status == .notFound)
            }
            let suspended = try await send(client, "/api/admin/tenants/an-3", .patch, headers(app.platformKey).merging([.contentType: "application/json"]),
                                           body: ByteBuffer(string: #"{"status":"suspended"}"#))
            #expect(suspended.status == .ok)

            try await app.settleAnalytics()
            let (response, report) = try await app.analytics(client)
            let analytics = try #require(report, "\(response.status) \(String(buffer: response.body))")

            // What the log says, counted in SQL straight from the events table.
            let owner = app.database.superuserURL
            let ids = try await rows(owner, "SELECT slug, id FROM tenants", as: (String, UUID).self)
            let slugOf = Dictionary(uniqueKeysWithValues: ids.map { ($0.1.uuidString.lowercased(), $0.0) })
            let daily = try await rows(owner, """
                SELECT tenant_id, (recorded_at AT TIME ZONE 'UTC')::date::text,
                       count(DISTINCT recorded_at) FILTER (WHERE stream_type <> 'security'), count(*)
                  FROM events GROUP BY 1, 2 ORDER BY 1, 2
                """, as: (UUID, String, Int64, Int64).self)
            let speciesFromLog = try await rows(owner, """
                WITH kind AS (
                  SELECT DISTINCT ON (tenant_id, stream_id) tenant_id, stream_id, data->>'species' AS species
                    FROM events WHERE stream_type = 'pet' AND event_type IN ('PetRegistered', 'PetDetailsChanged')
                   ORDER BY tenant_id, stream_id, seq DESC
                ), gone AS (
                  SELECT DISTINCT ON (tenant_id, stream_id) tenant_id, stream_id, event_type = 'PetRemoved' AS removed
                    FROM events WHERE stream_type = 'pet' AND event_type IN ('PetRemoved', 'PetRestored')
                   ORDER BY tenant_id, stream_id, seq DESC
                )
                SELECT k.tenant_id, k.species, count(*) FILTER (WHERE NOT coalesce(g.removed, false)), count(*) FILTER (WHERE g.removed)
                  FROM kind k LEFT JOIN gone g USING (tenant_id, stream_id) GROUP BY 1, 2
                """, as: (UUID, String, Int64, Int64).self)

            #expect(analytics.tenants.map(\.slug) == ["an-0", "an-1", "an-2", "an-3", "an-limited"])
            #expect(analytics.projection.tenantsBehind == 0 && analytics.projection.eventsBehind == 0)
            var totalCommands: Int64 = 0, totalEvents: Int64 = 0
            for tenant in analytics.tenants {
                let logDays = daily.filter { slugOf[$0.0.uuidString.lowercased()] == tenant.slug }
                #expect(tenant.daily.map(\.day) == logDays.map(\.1), "\(tenant.slug)")
                #expect(tenant.daily.map(\.commands) == logDays.map(\.2), "\(tenant.slug) commands per day")
                #expect(tenant.daily.map(\.events) == logDays.map(\.3), "\(tenant.slug) events per day")
                #expect(tenant.commands == logDays.reduce(0) { $0 + $1.2 })
                #expect(tenant.events == logDays.reduce(0) { $0 + $1.3 })
                totalCommands += tenant.commands
                totalEvents += tenant.events

                let logSpecies = speciesFromLog.filter { slugOf[$0.0.uuidString.lowercased()] == tenant.slug }
                    .map { AnalyticsReport.Species(species: $0.1, active: $0.2, removed: $0.3) }
                    .sorted { $0.species < $1.species }
                #expect(tenant.petsBySpecies.sorted { $0.species < $1.species } == logSpecies, "\(tenant.slug) pets by species")
                #expect(tenant.pets.active == logSpecies.reduce(0) { $0 + $1.active })
                #expect(tenant.pets.removed == logSpecies.reduce(0) { $0 + $1.removed })
            }
            #expect(analytics.overall.commands == totalCommands && analytics.overall.events == totalEvents)
            #expect(analytics.overall.daily.reduce(0) { $0 + $1.events } == totalEvents)
            #expect(analytics.overall.daily.count == 30)
            let overallActive = speciesFromLog.reduce(Int64(0)) { $0 + $1.2 }
            #expect(analytics.overall.pets.active == overallActive && overallActive > 5)

            // The pets read model, built by another projector, agrees.
            // A schema tenant's pets are in its own schema: every tenant's read model, wherever it is.
            let homes = try await rows(owner, "SELECT location FROM tenants WHERE placement = 'schema'", as: String.self)
            #expect(!homes.isEmpty, "premium tenants have schemas of their own")
            let everyPet = (["public"] + homes).map { "SELECT deleted FROM \($0).pets" }.joined(separator: " UNION ALL ")
            let fromReadModel = try await rows(owner, PostgresQuery(unsafeSQL:
                "SELECT count(*) FILTER (WHERE NOT deleted), count(*) FILTER (WHERE deleted) FROM (\(everyPet)) AS pets"), as: (Int64, Int64).self)
                .first.map { [$0.0, $0.1] } ?? []
            #expect(fromReadModel == [analytics.overall.pets.active, analytics.overall.pets.removed])

            // Refusals and attempts are what the clients met.
            let bySlug = Dictionary(uniqueKeysWithValues: analytics.tenants.map { ($0.slug, $0) })
            #expect(bySlug["an-limited"]?.rateLimitedRequests == Int64(refused))
            #expect(analytics.overall.rateLimitedRequests == Int64(refused))
            #expect(bySlug["an-1"]?.crossTenantAttempts == 3)
            #expect(bySlug["an-0"]?.crossTenantAttempts == 2)
            #expect(analytics.overall.crossTenantAttempts == 5)

            let plansSeen = Dictionary(uniqueKeysWithValues: analytics.overall.tenantsByPlan.map { ($0.plan, $0.tenants) })
            #expect(plansSeen == ["free": 2, "basic": 1, "premium": 1, "enterprise": 1])
            let statuses = Dictionary(uniqueKeysWithValues: analytics.overall.tenantsByStatus.map { ($0.status, $0.tenants) })
            #expect(statuses["active"] == 4 && statuses["suspended"] == 1)

            // A read model is disposable: rebuilt from the logs, it gives the same report.
            try await app.dependencies.runtime.rebuild("analytics")
            let (_, rebuilt) = try await app.analytics(client)
            var again = try #require(rebuilt)
            again.generatedAt = analytics.generatedAt
            #expect(again == analytics)

            // One tenant's report is the same figures, alone.
            let (_, scoped) = try await app.analytics(client, "?tenant=an-1")
            let one = try #require(scoped)
            #expect(one.tenants == [try #require(bySlug["an-1"])])
            #expect(one.overall.commands == bySlug["an-1"]?.commands && one.overall.tenants == 1)
            #expect(one.overall.unknownTenantRequests == nil)
        }
    }

    @Test func `a range reaches back only as far as asked`() async throws {
        try await withApp { app, client in
            let tenant = try await app.tenantClient(client, slug: "an-range")
            _ = try await tenant.register("Rex")
            try await app.settleAnalytics()
            let today = String(Timestamps.format(Date()).prefix(10))
            let (_, withToday) = try await app.analytics(client, "?from=\(today)&to=\(today)")
            let report = try #require(withToday)
            #expect(report.overall.daily.map(\.day) == [today])
            #expect(report.overall.events > 0)
            let (_, past) = try await app.analytics(client, "?from=2020-01-01&to=2020-12-31")
            let old = try #require(past)
            #expect(old.overall.daily.count == 366 && old.overall.events == 0 && old.overall.commands == 0)
            #expect(old.overall.pets.active == report.overall.pets.active, "pets are counted as they are now")
        }
    }

    @Test func `bad analytics queries get problem details and no other tenant is read`() async throws {
        try await withApp { app, client in
            let tenant = try await app.tenantClient(client, slug: "an-bad")
            let cases: [(String, Int, String)] = [
                ("?from=2026-11-29&to=2026-11-01", 400, "reversed"),
                ("?from=2026-02-30", 400, "calendar day"),
                ("?to=yesterday", 400, "calendar day"),
                ("?from=2026-11-29%27%20OR%201=1--", 400, "calendar day"),
                ("?from=2020-01-01&to=2026-01-01", 400, "at most 366"),
                ("?tenant=nobody-here", 404, "nobody-here"),
                ("?tenant=x%27%3B%20DROP%20TABLE%20tenants%3B--", 404, "No tenant"),
                ("?limit=5", 400, "limit"),
            ]
            for (query, status, detail) in cases {
                let response = try await send(client, "/api/admin/analytics" + query, .get, headers(app.platformKey))
                #expect(response.status.code == status, "\(query): \(String(buffer: response.body))")
                #expect(response.headers[.contentType] == "application/problem+json", "\(query)")
                #expect(String(buffer: response.body).contains(detail), "\(query): \(String(buffer: response.body))")
            }
            // A tenant's own admin is not a platform admin.
            let denied = try await send(client, "/api/admin/analytics", .get, headers(tenant.key))
            #expect([401, 403].contains(denied.status.code))
            let tenants = try await scalar(app.database.superuserURL, "SELECT count(*) FROM tenants", as: Int64.self)
            #expect(tenants == 1)
        }
    }
}

@Suite struct SecurityEventFilterTests {
    @Test func `the platform security log narrows to one tenant and one kind`() async throws {
        try await withApp { app, client in
            let one = try await app.tenantClient(client, slug: "sec-one")
            let two = try await app.tenantClient(client, slug: "sec-two")
            let three = try await app.tenantClient(client, slug: "sec-three")
            #expect(try await send(client, "/api/pets", .get, headers(one.key, tenant: "sec-two")).status == .notFound)
            #expect(try await send(client, "/api/pets", .get, headers(one.key, tenant: "sec-two")).status == .notFound)
            #expect(try await send(client, "/api/pets", .get, headers(three.key, tenant: "sec-one")).status == .notFound)
            #expect(try await send(client, "/api/config", .get, headers(two.key, tenant: "no-such-shop")).status == .notFound)
            await app.dependencies.securityLog.flush()

            func items(_ query: String) async throws -> [[String: Any]] {
                let response = try await send(client, "/api/admin/security-events" + query, .get, headers(app.platformKey))
                #expect(response.status == .ok, "\(query): \(String(buffer: response.body))")
                let body = try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any]
                return body?["items"] as? [[String: Any]] ?? []
            }
            let ids = try await rows(app.database.superuserURL, "SELECT slug, id FROM tenants", as: (String, UUID).self)
            let id = Dictionary(uniqueKeysWithValues: ids.map { ($0.0, $0.1.uuidString.lowercased()) })

            #expect(try await items("").count == 3)
            let aboutTwo = try await items("?tenant=sec-two")
            // Attempts against sec-two, and the one its key made against a tenant that does not exist.
            #expect(aboutTwo.count == 2)
            var attempts = 0
            for item in aboutTwo {
                #expect(item["target_tenant"] as? String == id["sec-two"] || item["actor_tenant"] as? String == id["sec-two"])
                attempts += item["attempts"] as? Int ?? 0
            }
            #expect(attempts == 3)
            let unknown = try await items("?kind=unknown_tenant")
            #expect(unknown.count == 1 && unknown.first?["target_slug"] as? String == "no-such-shop")
            #expect(try await items("?tenant=sec-three&kind=cross_tenant").count == 1)

            for (query, status) in [("?tenant=gone-shop", 404), ("?kind=everything", 400), ("?target=sec-one", 400)] {
                let response = try await send(client, "/api/admin/security-events" + query, .get, headers(app.platformKey))
                #expect(response.status.code == status, "\(query)")
                #expect(response.headers[.contentType] == "application/problem+json")
            }
        }
    }
}

@Suite struct AdminPageTests {
    @Test func `the admin page and its assets are served from the app alone, under a strict policy`() async throws {
        try await withApp { _, client in
            let page = try await send(client, "/admin", .get, [:])
            #expect(page.status == .ok)
            #expect(page.headers[.contentType] == "text/html; charset=utf-8")
            let policy = try #require(page.headers[.contentSecurityPolicy])
            #expect(policy.contains("default-src 'none'") && policy.contains("script-src 'self'") && !policy.contains("unsafe-inline"))
            let html = String(buffer: page.body)
            #expect(html.contains("/admin/app.js") && html.contains("/admin/app.css"))
            #expect(!html.contains("<script>") && !html.contains("<style") && !html.contains(" style=") && !html.contains(" onclick="))

            var assets = html
            for (path, type) in [("/admin/app.js", "text/javascript; charset=utf-8"), ("/admin/app.css", "text/css; charset=utf-8")] {
                let asset = try await send(client, path, .get, [:])
                #expect(asset.status == .ok, "\(path)")
                #expect(asset.headers[.contentType] == type, "\(path)")
                #expect(asset.headers[.xContentTypeOptions] == "nosniff")
                assets += String(buffer: asset.body)
            }
            // Nothing fetched from elsewhere: no absolute URLs but the SVG namespace.
            let external = assets.replacingOccurrences(of: "http://www.w3.org/2000/svg", with: "")
            #expect(!external.contains("http://") && !external.contains("https://") && !external.contains("//cdn"))
            #expect(assets.contains("/api/admin/analytics") && assets.contains("/api/admin/security-events"))
            for sink in ["innerHTML =", "innerHTML=", "outerHTML", "insertAdjacentHTML", "document.write", "eval("] {
                #expect(!assets.contains(sink), "tenant data (slugs, species) is only ever set as text: \(sink)")
            }
        }
    }
}

@Suite struct RateLimitLedgerTests {
    @Test func `refusal counts survive a failed write and are added once the database takes them`() async throws {
        let database = try await TestCluster.shared.emptyDatabase()
        try await database.withAppClient { client in
            let ledger = RateLimitLedger(client: client, logger: TestCluster.logger)
            let tenant = TenantID()
            for _ in 0..<3 { ledger.record(tenant) }
            ledger.record(tenant, at: Date(timeIntervalSince1970: 1_795_000_000))
            // No schema yet: the write fails and the counts wait.
            await ledger.flush()
            #expect(ledger.pendingRefusals == 4)
            try await Migrator().migrate(database.ownerURL, logger: TestCluster.logger)
            ledger.record(tenant)
            await ledger.flush()
            #expect(ledger.pendingRefusals == 0)
            let days = try await rows(database.superuserURL, "SELECT day::text, requests FROM rate_limited_requests ORDER BY day",
                                      as: (String, Int64).self)
            #expect(days.map(\.0) == ["2026-11-18", String(Timestamps.format(Date()).prefix(10))])
            #expect(days.map(\.1) == [1, 4])
        }
    }
}

@Suite struct FlushQueueTests {
    @Test func `a flush returns only after the one already writing has finished`() async throws {
        let queue = FlushQueue()
        let written = Mutex<[String]>([])
        async let slow: Void = queue.run {
            try? await Task.sleep(for: .milliseconds(300))
            written.withLock { $0.append("periodic") }
        }
        try await Task.sleep(for: .milliseconds(50))
        await queue.run { written.withLock { $0.append("asked") } }
        #expect(written.withLock { $0 } == ["periodic", "asked"])
        await slow
    }
}
