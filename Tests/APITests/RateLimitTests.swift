import API
import Database
import Domain
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import PetstoreTesting
import PostgresNIO
import Tenancy
import Testing

/// The algorithm on a clock the test moves.
@Suite struct GCRATests {
    // 100 an hour: one per 36 s, 10 back to back.
    let gcra = GCRA(emission: 36_000_000, burst: 10)
    let second: Int64 = 1_000_000

    @Test func `a full burst is admitted back to back and the next request is refused until one interval passes`() {
        var tat: Int64? = nil
        let start: Int64 = 1_000 * second
        for index in 0..<10 {
            let decision = gcra.take(1, tat: tat, now: start)
            #expect(decision.granted == 1, "request \(index) of the burst")
            tat = decision.tat
            #expect(gcra.remaining(tat: decision.tat, now: start) == 9 - index)
        }
        let refused = gcra.take(1, tat: tat, now: start)
        #expect(refused.granted == 0)
        #expect(refused.tat == tat, "a refusal spends nothing")
        #expect(gcra.retryAfter(tat: tat!, now: start) == 36 * second)
        #expect(gcra.reset(tat: tat!, now: start) == 360 * second)

        // One interval less a microsecond: still refused; at the interval: one request, not two.
        #expect(gcra.take(1, tat: tat, now: start + 36 * second - 1).granted == 0)
        let refilled = gcra.take(2, tat: tat, now: start + 36 * second)
        #expect(refilled.granted == 1)
        #expect(gcra.take(1, tat: refilled.tat, now: start + 36 * second).granted == 0)
    }

    @Test func `steady traffic at the rate is always admitted, and an hour admits the limit plus the burst`() {
        var tat: Int64? = nil
        var admitted = 0
        // A request every second for an hour.
        for tick in 0..<3600 {
            let decision = gcra.take(1, tat: tat, now: Int64(tick) * second)
            admitted += decision.granted
            tat = decision.tat
        }
        #expect(admitted == 100 + 10 - 1, "the burst, then one per 36 s for the rest of the hour")
        #expect(admitted <= 100 + 10)
    }

    @Test func `a long idle restores the full burst and never more`() {
        var tat: Int64? = nil
        for _ in 0..<10 { tat = gcra.take(1, tat: tat, now: 0).tat }
        let later: Int64 = 30 * 24 * 3600 * second
        #expect(gcra.remaining(tat: tat!, now: later) == 10)
        #expect(gcra.take(50, tat: tat, now: later).granted == 10, "a month idle buys the burst, not a month of requests")
        #expect(gcra.reset(tat: tat!, now: later) == 0)
    }

    @Test func `the database's rate_limit_take agrees with GCRA step for step`() async throws {
        let database = try await TestCluster.shared.database()
        let tenant = UUID()
        var tat: Int64? = nil
        // A deterministic walk: bursts, pauses shorter and longer than the interval, multi-token takes.
        var now: Int64 = 5_000 * second
        var generator = SplitMix(seed: 42)
        for step in 0..<300 {
            now += Int64(generator.next() % 5) * Int64(generator.next() % 40) * second / 3
            let wanted = Int(generator.next() % 4) + 1
            let expected = gcra.take(wanted, tat: tat, now: now)
            let row = try await rows(database.appURL,
                                     "SELECT granted, tat_us FROM rate_limit_take(\(tenant), \(Int32(wanted)), \(gcra.emission), \(Int32(gcra.burst)), \(now))",
                                     as: (Int32, Int64).self)
            #expect(Int(row[0].0) == expected.granted, "step \(step): granted")
            #expect(row[0].1 == expected.tat, "step \(step): tat")
            tat = expected.tat
        }
    }
}

struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

@Suite struct RateLimitConfigurationTests {
    @Test func `the defaults are the plans' hourly quotas`() {
        #expect(RateLimits.defaults.quota(for: .free).limit == 100)
        #expect(RateLimits.defaults.quota(for: .basic).limit == 1_000)
        #expect(RateLimits.defaults.quota(for: .premium).limit == 10_000)
        #expect(RateLimits.defaults.quota(for: .enterprise).limit == 100_000)
        #expect(Set(RateLimits.defaults.quotas.values.map(\.period)) == [3600])
    }

    @Test func `overrides change the plans named and keep the others`() throws {
        let limits = try RateLimits.defaults.overridden(by: "free=5/m+2, enterprise=1000000/d")
        #expect(limits.quota(for: .free) == (try RateLimits.Quota(limit: 5, period: 60, burst: 2)))
        #expect(limits.quota(for: .enterprise) == (try RateLimits.Quota(limit: 1_000_000, period: 86_400, burst: 200)))
        #expect(limits.quota(for: .basic) == RateLimits.defaults.quota(for: .basic))
    }

    @Test(arguments: ["free=0/h", "free=-5/h", "free=10/h+0", "free=10/h+-1", "free=10/0", "gold=10/h", "free=10", "free=ten/h", "free=10/fortnight", "free"])
    func `zero, negative, unknown plans and malformed entries are refused whole`(text: String) {
        #expect(throws: RateLimitConfigurationError.self) { try RateLimits.defaults.overridden(by: "basic=1/s,\(text)") }
    }
}

@Suite struct RateLimitTests {
    static let tight = try! RateLimits.defaults.overridden(by: "free=100/h+3,premium=10000/h+50")

    @Test func `every tenant response carries the quota headers, errors included`() async throws {
        try await withApp(.router, rateLimits: Self.tight) { app, client in
            let tenant = try await app.tenantClient(client, slug: "headers")
            for (method, uri) in [(HTTPRequest.Method.get, "/api/pets"), (.get, "/api/pets/\(UUID())"), (.get, "/api/users")] {
                let response = try await tenant.call(method, uri)
                #expect(response.headers[HTTPField.Name("X-RateLimit-Limit")!] == "100", "\(method) \(uri) \(response.status)")
                #expect(response.headers[HTTPField.Name("RateLimit-Policy")!] == "\"free\";q=100;w=3600")
                let remaining = try #require(response.headers[HTTPField.Name("X-RateLimit-Remaining")!].flatMap(Int.init))
                #expect((0...3).contains(remaining))
                let rateLimit = try #require(response.headers[HTTPField.Name("RateLimit")!])
                #expect(rateLimit.wholeMatch(of: /"free";r=\d+;t=\d+/) != nil, "\(rateLimit)")
                #expect(rateLimit.contains("r=\(remaining);"))
                let reset = try #require(response.headers[HTTPField.Name("X-RateLimit-Reset")!].flatMap(Int.init))
                let now = Int(Date().timeIntervalSince1970)
                #expect((now...(now + 3600)).contains(reset), "a Unix time within the window")
            }
        }
    }

    @Test func `over the burst a tenant gets 429 with Retry-After and a quota-exceeded problem`() async throws {
        try await withApp(.router, rateLimits: Self.tight) { app, client in
            let tenant = try await app.tenantClient(client, slug: "busy")
            var statuses: [Int] = []
            var remaining: [String] = []
            for _ in 0..<5 {
                let response = try await tenant.call(.get, "/api/pets")
                statuses.append(response.status.code)
                remaining.append(response.headers[HTTPField.Name("X-RateLimit-Remaining")!] ?? "-")
                if response.status == .tooManyRequests {
                    #expect(response.headers[.contentType] == "application/problem+json")
                    #expect(String(buffer: response.body).contains("/problems/quota-exceeded\""))
                    let retry = try #require(response.headers[.retryAfter].flatMap(Int.init))
                    #expect((1...36).contains(retry), "one request every 36 s: \(retry)")
                }
            }
            #expect(statuses == [200, 200, 200, 429, 429])
            #expect(remaining == ["2", "1", "0", "0", "0"])
        }
    }

    @Test func `401s and cross-tenant 404s do not spend the victim's quota`() async throws {
        try await withApp(.router, rateLimits: Self.tight) { app, client in
            let victim = try await app.tenantClient(client, slug: "victim")
            let attacker = try await app.tenantClient(client, slug: "attacker")
            for _ in 0..<10 {
                let foreign = try await send(client, "/api/pets", .get, headers(attacker.key, tenant: victim.slug))
                #expect(foreign.status == .notFound)
                #expect(foreign.headers[HTTPField.Name("X-RateLimit-Limit")!] == nil, "a 404 must not reveal the victim's plan")
                let anonymous = try await send(client, "/api/pets", .get, headers("psk_not_a_key", tenant: victim.slug))
                #expect(anonymous.status == .unauthorized)
            }
            for _ in 0..<3 { #expect(try await victim.call(.get, "/api/pets").status == .ok) }
            #expect(try await victim.call(.get, "/api/pets").status == .tooManyRequests)
        }
    }

    @Test func `a plan change takes effect on the next request`() async throws {
        try await withApp(.router, rateLimits: Self.tight) { app, client in
            let tenant = try await app.tenantClient(client, slug: "upgrader")
            for _ in 0..<3 { _ = try await tenant.call(.get, "/api/pets") }
            #expect(try await tenant.call(.get, "/api/pets").status == .tooManyRequests)
            let patched = try await send(client, "/api/admin/tenants/upgrader", .patch,
                                         [.authorization: "Bearer \(app.platformKey)", .contentType: "application/json"],
                                         body: ByteBuffer(string: #"{"plan":"premium"}"#))
            #expect(patched.status == .ok, "\(String(buffer: patched.body))")
            let next = try await tenant.call(.get, "/api/pets")
            #expect(next.status == .ok, "the premium burst is open at once")
            #expect(next.headers[HTTPField.Name("X-RateLimit-Limit")!] == "10000")
            #expect(next.headers[HTTPField.Name("RateLimit-Policy")!] == "\"premium\";q=10000;w=3600")
        }
    }

    @Test func `an unknown plan is refused with 422 and leaves the tenant as it was`() async throws {
        try await withApp(.router, rateLimits: Self.tight) { app, client in
            let tenant = try await app.tenantClient(client, slug: "stays-free")
            let patched = try await send(client, "/api/admin/tenants/stays-free", .patch,
                                         [.authorization: "Bearer \(app.platformKey)", .contentType: "application/json"],
                                         body: ByteBuffer(string: #"{"plan":"platinum"}"#))
            #expect(patched.status == .unprocessableContent)
            #expect(try await tenant.call(.get, "/api/pets").headers[HTTPField.Name("X-RateLimit-Limit")!] == "100")
        }
    }

    /// The store is made unavailable for real: the table is locked, so the limiter's statement
    /// runs into its lock timeout.
    @Test(arguments: [RateLimiter.FailureMode.open, .closed])
    func `with the store unavailable the limiter fails open or closed as configured`(mode: RateLimiter.FailureMode) async throws {
        try await withApp(.router, rateLimits: Self.tight, rateLimitFailure: mode) { app, client in
            let tenant = try await app.tenantClient(client, slug: "store-down")
            #expect(try await tenant.call(.get, "/api/pets").status == .ok)
            try await app.database.ownerURL.withConnection(logger: TestCluster.logger) { connection in
                try await connection.query("BEGIN", logger: TestCluster.logger).consume()
                try await connection.query("LOCK TABLE rate_limits IN ACCESS EXCLUSIVE MODE", logger: TestCluster.logger).consume()
                let start = ContinuousClock.now
                let response = try await tenant.call(.get, "/api/pets")
                #expect(ContinuousClock.now - start < .seconds(5), "the lock timeout bounds the wait")
                switch mode {
                case .open:
                    #expect(response.status == .ok)
                    #expect(response.headers[HTTPField.Name("X-RateLimit-Limit")!] == "100")
                    #expect(response.headers[HTTPField.Name("X-RateLimit-Remaining")!] == nil, "nothing is known about what remains")
                case .closed:
                    #expect(response.status == .serviceUnavailable)
                    #expect(response.headers[.retryAfter] == "1")
                    #expect(String(buffer: response.body).contains("rate limiter"))
                }
                try await connection.query("ROLLBACK", logger: TestCluster.logger).consume()
            }
            #expect(try await tenant.call(.get, "/api/pets").status == .ok, "back to normal once the store answers")
        }
    }
}

@Suite struct RateLimitBatchTests {
    @Test func `a batch of takes decides each in the order given for its tenant, whatever the tenant order`() async throws {
        let database = try await TestCluster.shared.database()
        let first = UUID(uuidString: "ffffffff-0000-4000-8000-000000000000")!
        let second = UUID(uuidString: "00000000-0000-4000-8000-000000000000")!
        let tenants = [first, second, first, first, second]
        let wanted: [Int32] = [1, 2, 1, 1, 1]
        let emissions = [Int64](repeating: 36_000_000, count: 5)
        let bursts = [Int32](repeating: 2, count: 5)
        let result = try await rows(database.appURL, """
            SELECT ord, granted FROM rate_limit_take_many(\(tenants), \(wanted), \(emissions), \(bursts)) ORDER BY ord
            """, as: (Int32, Int32).self)
        #expect(result.map(\.0) == [1, 2, 3, 4, 5], "one row per take, numbered as given")
        // Burst 2: the first tenant's takes get 1, 1, 0; the second's 2 then 0.
        #expect(result.map(\.1) == [1, 2, 1, 0, 0])
    }

    @Test func `requests given back are available again, and only as many as were given back`() async throws {
        let database = try await TestCluster.shared.database()
        let tenant = UUID()
        let at: Int64 = 1_000_000_000_000
        func take(_ wanted: Int32, returned: Int32) async throws -> Int32 {
            try await scalar(database.appURL, """
                SELECT granted FROM rate_limit_take_many(ARRAY[\(tenant)], ARRAY[\(wanted)], ARRAY[36000000::bigint], ARRAY[5], \(at), ARRAY[\(returned)])
                """, as: Int32.self) ?? -1
        }
        #expect(try await take(5, returned: 0) == 5, "the whole burst")
        #expect(try await take(1, returned: 0) == 0)
        #expect(try await take(4, returned: 3) == 3, "three were not spent and came back")
        #expect(try await take(1, returned: 0) == 0, "and no more than those")
    }
}
