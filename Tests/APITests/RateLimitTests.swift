import API
import Database
import Domain
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

    @Test func `at the enterprise defaults 500 requests go back to back and the next is cut`() {
        let quota = RateLimits.defaults.quota(for: .enterprise)
        var row: RateLimitRow? = nil
        let now: Int64 = 7_200 * second + 123
        var admitted = 0
        for _ in 0..<2_000 {
            let decision = RateLimitRow.take(1, row: row, quota: quota.window, burst: quota.gcra, now: now)
            admitted += decision.granted
            row = decision.row
        }
        #expect(admitted == 500, "a flood in one instant gets the burst and no more")
        #expect(row?.used == 500, "refusals spend nothing of the quota")
        // A second later the burst is whole again; the quota has 99 000 left.
        let later = RateLimitRow.take(600, row: row, quota: quota.window, burst: quota.gcra, now: now + second)
        #expect(later.granted == 500)
        #expect(quota.window.remaining(used: later.row.used) == 99_000)
    }
}

/// The quota's fixed window on a clock the test moves.
@Suite struct QuotaWindowTests {
    let second: Int64 = 1_000_000
    let hourly = RateLimits.defaults.quota(for: .free)

    @Test func `windows are aligned to the period and counted from zero in each`() {
        let window = hourly.window
        let start: Int64 = 1_795_932_000 * second
        #expect(window.start(at: start) == start)
        #expect(window.start(at: start + 3_599 * second) == start)
        #expect(window.start(at: start + 3_600 * second) == start + 3_600 * second)
        #expect(window.start(at: -1) == -3_600 * second, "floor, not truncation")

        // 100 an hour, 10 a second: ten seconds of bursts spend the hour.
        var row: RateLimitRow? = nil
        var granted: [Int] = []
        for tick in 0..<12 {
            let decision = RateLimitRow.take(20, row: row, quota: window, burst: hourly.gcra, now: start + Int64(tick) * second)
            granted.append(decision.granted)
            row = decision.row
        }
        #expect(granted == [10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 0, 0])
        #expect(row?.used == 100)
        let next = RateLimitRow.take(1, row: row, quota: window, burst: hourly.gcra, now: start + 3_600 * second)
        #expect(next.granted == 1, "the next hour starts afresh")
        #expect(next.row.used == 1 && next.row.window == start + 3_600 * second)
    }

    @Test func `what is given back counts again only in the window it was taken in`() {
        let window = hourly.window
        let start: Int64 = 1_795_932_000 * second
        let taken = RateLimitRow.take(5, row: nil, quota: window, burst: hourly.gcra, now: start)
        #expect(taken.granted == 5 && taken.row.used == 5)
        let back = RateLimitRow.take(1, row: taken.row, quota: window, burst: hourly.gcra, now: start + second, returned: 3, returnedWindow: start)
        #expect(back.row.used == 3, "5 - 3 given back + 1")
        let late = RateLimitRow.take(1, row: back.row, quota: window, burst: hourly.gcra, now: start + 3_601 * second,
                                     returned: 2, returnedWindow: start)
        #expect(late.row.used == 1, "the old window's requests are not subtracted from the new one's")
    }

    @Test func `the database's quota_take_many agrees with RateLimitRow step for step`() async throws {
        let database = try await TestCluster.shared.database()
        let tenant = UUID()
        // Three plans, one sharing its period with another: changes carry the count or restart it.
        let plans = [try RateLimits.Quota(limit: 40, period: 60, burst: 6),
                     try RateLimits.Quota(limit: 90, period: 60, burst: 3, burstWindow: 2),
                     try RateLimits.Quota(limit: 25, period: 3600, burst: 9)]
        var row: RateLimitRow? = nil
        var now: Int64 = 5_000 * second + 17
        var generator = SplitMix(seed: 42)
        for step in 0..<400 {
            // Pauses shorter and longer than the burst's interval, sometimes past a window's end.
            now += Int64(generator.next() % 5) * Int64(generator.next() % 40) * second / 7
            let plan = plans[step < 150 ? 0 : Int(generator.next() % 3)]
            let wanted = Int(generator.next() % 4) + 1
            let returned = generator.next() % 5 == 0 ? Int(generator.next() % 3) : 0
            let returnedWindow = plan.window.start(at: now) - (generator.next() % 2 == 0 ? 0 : plan.window.period)
            let expected = RateLimitRow.take(wanted, row: row, quota: plan.window, burst: plan.gcra, now: now,
                                             returned: returned, returnedWindow: returnedWindow)
            let result = try await rows(database.appURL, """
                SELECT granted, used, window_start, tat_us FROM quota_take_many(
                  ARRAY[\(tenant)], ARRAY[\(Int32(wanted))], ARRAY[\(Int32(plan.limit))], ARRAY[\(plan.window.period)],
                  ARRAY[\(plan.gcra.emission)], ARRAY[\(Int32(plan.burst))], \(now), ARRAY[\(Int32(returned))], ARRAY[\(returnedWindow)])
                """, as: (Int32, Int32, Int64, Int64).self)
            #expect(Int(result[0].0) == expected.granted, "step \(step): granted")
            #expect(Int(result[0].1) == expected.row.used, "step \(step): used")
            #expect(result[0].2 == expected.row.window, "step \(step): window")
            #expect(result[0].3 == expected.row.tat, "step \(step): tat")
            row = expected.row
        }
        #expect(row.map { $0.used > 0 } == true)
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
    @Test func `the defaults are the plans' hourly quotas with a burst limit per second`() {
        #expect(RateLimits.defaults.quota(for: .free).limit == 100)
        #expect(RateLimits.defaults.quota(for: .basic).limit == 1_000)
        #expect(RateLimits.defaults.quota(for: .premium).limit == 10_000)
        #expect(RateLimits.defaults.quota(for: .enterprise).limit == 100_000)
        #expect(Set(RateLimits.defaults.quotas.values.map(\.period)) == [3600])
        #expect(Set(RateLimits.defaults.quotas.values.map(\.burstWindow)) == [1])
        #expect(RateLimits.defaults.quota(for: .enterprise).burst >= 400, "400 quick creates of an enterprise tenant pass")
    }

    @Test func `overrides change the plans named and keep the others`() throws {
        let limits = try RateLimits.defaults.overridden(by: "free=5/m+2, enterprise=1000000/d, basic=50/h+10/m, premium=7/3600+4/10")
        #expect(limits.quota(for: .free) == (try RateLimits.Quota(limit: 5, period: 60, burst: 2, burstWindow: 1)), "+N is N per second")
        #expect(limits.quota(for: .enterprise) == (try RateLimits.Quota(limit: 1_000_000, period: 86_400, burst: 500)))
        #expect(limits.quota(for: .basic) == (try RateLimits.Quota(limit: 50, period: 3600, burst: 10, burstWindow: 60)))
        #expect(limits.quota(for: .premium) == (try RateLimits.Quota(limit: 7, period: 3600, burst: 4, burstWindow: 10)))
        #expect(limits.quota(for: .premium).policyName == "hour")
        #expect(limits.quota(for: .enterprise).policyName == "day")
        #expect(try RateLimits.defaults.overridden(by: "free=5/7200").quota(for: .free).policyName == "7200s")
    }

    @Test(arguments: ["free=0/h", "free=-5/h", "free=10/h+0", "free=10/h+-1", "free=10/0", "gold=10/h", "free=10", "free=ten/h",
                      "free=10/fortnight", "free", "free=10/h+5/fortnight", "free=10/h+5/0", "free=10/m+5/h", "free=10/h+5/s/s", "free=10/h+/s"])
    func `zero, negative, unknown plans and malformed entries are refused whole`(text: String) {
        #expect(throws: RateLimitConfigurationError.self) { try RateLimits.defaults.overridden(by: "basic=1/s,\(text)") }
    }
}

extension HTTPField.Name {
    static let limit = HTTPField.Name("X-RateLimit-Limit")!
    static let remaining = HTTPField.Name("X-RateLimit-Remaining")!
    static let reset = HTTPField.Name("X-RateLimit-Reset")!
    static let policy = HTTPField.Name("RateLimit-Policy")!
    static let rateLimit = HTTPField.Name("RateLimit")!
}

/// The problem+json body of a 429, as a dictionary.
func problem(_ response: SentResponse) throws -> [String: Any] {
    try #require(try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any])
}

@Suite struct RateLimitTests {
    /// A free tenant with a roomy quota and a burst of 3 a second.
    static let tight = try! RateLimits.defaults.overridden(by: "free=100/h+3,premium=10000/h+50")
    /// A free tenant with a quota of 5 an hour and a burst that never binds.
    static let smallQuota = try! RateLimits.defaults.overridden(by: "free=5/h+1000,premium=10000/h+50")

    @Test func `every tenant response carries the quota headers, errors included`() async throws {
        try await withApp(.router, rateLimits: Self.tight) { app, client in
            let tenant = try await app.tenantClient(client, slug: "headers")
            for (method, uri) in [(HTTPRequest.Method.get, "/api/pets"), (.get, "/api/pets/\(UUID())"), (.get, "/api/users")] {
                let response = try await tenant.call(method, uri)
                #expect(response.headers[.limit] == "100", "\(method) \(uri) \(response.status)")
                #expect(response.headers[.policy] == "\"hour\";q=100;w=3600, \"burst\";q=3;w=1")
                let remaining = try #require(response.headers[.remaining].flatMap(Int.init))
                #expect((97...99).contains(remaining))
                let rateLimit = try #require(response.headers[.rateLimit])
                #expect(rateLimit.wholeMatch(of: /"(hour|burst)";r=\d+;t=\d+/) != nil, "\(rateLimit)")
                let reset = try #require(response.headers[.reset].flatMap(Int.init))
                let now = Int(Date().timeIntervalSince1970)
                #expect((now...(now + 3600)).contains(reset), "a Unix time within the window")
                #expect(reset % 3600 == 0, "the hour's window ends on the hour: \(reset)")
            }
        }
    }

    @Test func `a fresh free tenant sees its quota of 100, then 99 remaining after its first request, then 98`() async throws {
        try await withApp(.router, rateLimits: .defaults) { app, client in
            let tenant = try await app.tenantClient(client, slug: "fresh-free")
            var remaining: [String] = []
            var rateLimits: [String] = []
            for _ in 0..<3 {
                let response = try await tenant.call(.get, "/api/pets")
                #expect(response.status == .ok)
                #expect(response.headers[.limit] == "100")
                #expect(response.headers[.policy] == "\"hour\";q=100;w=3600, \"burst\";q=10;w=1")
                remaining.append(response.headers[.remaining] ?? "-")
                rateLimits.append(response.headers[.rateLimit] ?? "-")
            }
            #expect(remaining == ["99", "98", "97"])
            // 97 of 100 left in the hour is further from exhaustion than 7 of 10 in the second.
            #expect(rateLimits.allSatisfy { $0.hasPrefix("\"burst\";r=") && $0.hasSuffix(";t=1") }, "\(rateLimits)")
        }
    }

    @Test func `a spent quota gets 429 naming the hour policy, with Retry-After until the window ends`() async throws {
        try await QuotaWindows.clearOfHourTurn()
        try await withApp(.router, rateLimits: Self.smallQuota) { app, client in
            let tenant = try await app.tenantClient(client, slug: "spent")
            var statuses: [Int] = []
            var remaining: [String] = []
            var last: SentResponse?
            for _ in 0..<7 {
                let response = try await tenant.call(.get, "/api/pets")
                statuses.append(response.status.code)
                remaining.append(response.headers[.remaining] ?? "-")
                last = response
            }
            #expect(statuses == [200, 200, 200, 200, 200, 429, 429])
            #expect(remaining == ["4", "3", "2", "1", "0", "0", "0"])
            let refused = try #require(last)
            #expect(refused.headers[.contentType] == "application/problem+json")
            let body = try problem(refused)
            #expect(body["type"] as? String == "https://petstore.dev/problems/quota-exceeded")
            #expect(body["policy"] as? String == "hour")
            #expect((body["detail"] as? String)?.contains("quota of 5 requests per 3600 s is spent") == true, "\(body)")
            let retry = try #require(refused.headers[.retryAfter].flatMap(Int.init))
            let reset = try #require(refused.headers[.reset].flatMap(Int.init))
            let now = Int(Date().timeIntervalSince1970)
            #expect((1...3600).contains(retry))
            #expect(abs(now + retry - reset) <= 2, "Retry-After points at the window's end: \(retry) vs \(reset - now)")
            #expect(refused.headers[.rateLimit] == "\"hour\";r=0;t=\(retry)")
        }
    }

    /// Thirty requests at once against a burst of 3 a second. How many pass depends on how fast
    /// the machine sends them, within what GCRA guarantees: the burst, plus 3 for every second
    /// the requests took.
    @Test func `a burst over the short-window limit gets 429 naming the burst policy, with Retry-After of a second`() async throws {
        try await withApp(.router, rateLimits: Self.tight) { app, client in
            let tenant = try await app.tenantClient(client, slug: "busy")
            let start = ContinuousClock.now
            let responses = try await withThrowingTaskGroup(of: SentResponse.self) { group in
                for _ in 0..<30 { group.addTask { try await tenant.call(.get, "/api/pets") } }
                return try await group.reduce(into: [SentResponse]()) { $0.append($1) }
            }
            let elapsed = (ContinuousClock.now - start) / .seconds(1)
            let admitted = responses.filter { $0.status == .ok }.count
            let refused = responses.filter { $0.status == .tooManyRequests }
            #expect(admitted + refused.count == 30)
            #expect(admitted >= 3, "the burst passes")
            #expect(admitted <= 3 + Int(3 * elapsed) + 1, "\(admitted) admitted in \(elapsed) s")
            let response = try #require(refused.first, "a flood is cut")
            #expect(response.headers[.contentType] == "application/problem+json")
            let body = try problem(response)
            #expect(body["type"] as? String == "https://petstore.dev/problems/quota-exceeded")
            #expect(body["policy"] as? String == "burst")
            #expect((body["detail"] as? String)?.contains("bursts of 3 requests per 1 s") == true, "\(body)")
            for refusal in refused {
                #expect(refusal.headers[.retryAfter] == "1", "one more is admitted within a second")
                #expect(refusal.headers[.rateLimit] == "\"burst\";r=0;t=1")
                #expect(refusal.headers[.limit] == "100")
            }

            // A second later the burst is back, and the quota has counted only what was admitted.
            try await Task.sleep(for: .seconds(1.1))
            let again = try await tenant.call(.get, "/api/pets")
            #expect(again.status == .ok)
            #expect(again.headers[.remaining] == "\(100 - admitted - 1)", "a refusal spends nothing of the quota")
        }
    }

    /// Through the HTTP server, against the real database, with the default limits: 16 clients
    /// on connections of their own, 25 creates each, as fast as the server answers. The pool is
    /// large enough that the tenant's share of it (the bulkhead's default half) seats all 16, so
    /// only the rate limiter could refuse one. On a machine loaded enough that a create runs past
    /// the request deadline, the 503 is retried with the same Idempotency-Key, as a client would;
    /// a 429 is never retried and fails the test.
    @Test func `an enterprise tenant's 400 quick creates from 16 clients all succeed`() async throws {
        try await withApp(.live, poolSize: 32, rateLimits: .defaults) { app, client in
            let port = try #require(client.port)
            let key = try await app.onboard(client, slug: "big-corp", plan: "enterprise", placement: "shared")
            let results = try await withThrowingTaskGroup(of: [(status: Int, retries: Int)].self) { group in
                for worker in 0..<16 {
                    group.addTask {
                        try await TestClient.withClient(host: "127.0.0.1", port: port) { connection in
                            var results: [(status: Int, retries: Int)] = []
                            for index in 0..<25 {
                                let request = TestClient.Request(
                                    "/api/pets", method: .post,
                                    headers: [.authorization: "Bearer \(key)", HTTPField.Name("X-Tenant-ID")!: "big-corp",
                                              .contentType: "application/json", HTTPField.Name("Idempotency-Key")!: "create-\(worker)-\(index)"],
                                    body: ByteBuffer(string: #"{"name":"pet-\#(worker)-\#(index)","species":"dog"}"#))
                                var status = try await connection.execute(request).status.code
                                var retries = 0
                                while (status == 503 || status == 409) && retries < 10 {
                                    retries += 1
                                    try await Task.sleep(for: .milliseconds(200))
                                    status = try await connection.execute(request).status.code
                                }
                                results.append((status, retries))
                            }
                            return results
                        }
                    }
                }
                return try await group.reduce(into: [(status: Int, retries: Int)]()) { $0 += $1 }
            }
            let statuses = results.map(\.status)
            let retries = results.reduce(0) { $0 + $1.retries }
            #expect(statuses.count == 400)
            #expect(statuses.filter { $0 == 201 }.count == 400, "\(Dictionary(grouping: statuses, by: { $0 }).mapValues(\.count))")
            #expect(!statuses.contains(429), "no create is refused for rate")
            // Past the lease's life, so the read's take goes to the store (giving back what the
            // lease held unspent) and its header is the store's count, not this process's view.
            try await Task.sleep(for: .seconds(2.5))
            let last = try await send(client, "/api/pets?limit=1", .get, headers(key, tenant: "big-corp"))
            let remaining = try #require(last.headers[.remaining].flatMap(Int.init))
            // Every create and this read counted (a retried request that had passed the limiter
            // before it ran out of time counted too), none of them twice. Under a loaded run a
            // lease's unspent requests can still go uncounted back: up to one lease (a quarter of
            // the burst of 500) is charged that was not used. Exactness there is an open item.
            let lease = 500 / 4
            #expect(((100_000 - 401 - retries - lease)...(100_000 - 401)).contains(remaining), "\(remaining) with \(retries) retries")
            #expect(try await app.events(of: "PetRegistered", tenant: "big-corp").count == 401, "the sample pet and the 400")
        }
    }

    @Test func `401s and cross-tenant 404s do not spend the victim's quota`() async throws {
        try await QuotaWindows.clearOfHourTurn()
        try await withApp(.router, rateLimits: Self.smallQuota) { app, client in
            let victim = try await app.tenantClient(client, slug: "victim")
            let attacker = try await app.tenantClient(client, slug: "attacker")
            for _ in 0..<10 {
                let foreign = try await send(client, "/api/pets", .get, headers(attacker.key, tenant: victim.slug))
                #expect(foreign.status == .notFound)
                #expect(foreign.headers[.limit] == nil, "a 404 must not reveal the victim's plan")
                let anonymous = try await send(client, "/api/pets", .get, headers("psk_not_a_key", tenant: victim.slug))
                #expect(anonymous.status == .unauthorized)
            }
            for _ in 0..<5 { #expect(try await victim.call(.get, "/api/pets").status == .ok) }
            #expect(try await victim.call(.get, "/api/pets").status == .tooManyRequests)
        }
    }

    @Test func `a plan change takes effect on the next request and keeps the window's count`() async throws {
        try await QuotaWindows.clearOfHourTurn()
        try await withApp(.router, rateLimits: Self.smallQuota) { app, client in
            let tenant = try await app.tenantClient(client, slug: "upgrader")
            for _ in 0..<5 { _ = try await tenant.call(.get, "/api/pets") }
            #expect(try await tenant.call(.get, "/api/pets").status == .tooManyRequests)
            let patched = try await send(client, "/api/admin/tenants/upgrader", .patch,
                                         [.authorization: "Bearer \(app.platformKey)", .contentType: "application/json"],
                                         body: ByteBuffer(string: #"{"plan":"premium"}"#))
            #expect(patched.status == .ok, "\(String(buffer: patched.body))")
            let next = try await tenant.call(.get, "/api/pets")
            #expect(next.status == .ok, "the premium quota is open at once")
            #expect(next.headers[.limit] == "10000")
            #expect(next.headers[.remaining] == "\(10_000 - 6)", "the five spent this hour, and this one, count against the new quota")
            #expect(next.headers[.policy] == "\"hour\";q=10000;w=3600, \"burst\";q=50;w=1")
        }
    }

    @Test func `an unknown plan is refused with 422 and leaves the tenant as it was`() async throws {
        try await withApp(.router, rateLimits: Self.tight) { app, client in
            let tenant = try await app.tenantClient(client, slug: "stays-free")
            let patched = try await send(client, "/api/admin/tenants/stays-free", .patch,
                                         [.authorization: "Bearer \(app.platformKey)", .contentType: "application/json"],
                                         body: ByteBuffer(string: #"{"plan":"platinum"}"#))
            #expect(patched.status == .unprocessableContent)
            #expect(try await tenant.call(.get, "/api/pets").headers[.limit] == "100")
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

extension RateLimitTests {
    /// Shown with the store locked: a request of a tenant with room to spare is answered without
    /// waiting for it, with the headers of this process's count, and counted once it answers.
    @Test func `a tenant with room to spare is admitted without waiting for the store, and counted right after`() async throws {
        try await withApp(.router) { app, client in
            let tenant = try await app.tenantClient(client, slug: "roomy")
            let id = try #require(try await app.catalog.tenant(slug: "roomy")).id
            #expect(try await tenant.call(.get, "/api/pets").status == .ok)
            try await Task.sleep(for: .milliseconds(300))
            let counted = { try await scalar(app.database.superuserURL, "SELECT quota_used FROM rate_limits WHERE tenant_id = \(id)", as: Int32.self) ?? -1 }
            let before = try await counted()
            var admitted = 0
            try await app.database.ownerURL.withConnection(logger: TestCluster.logger) { connection in
                try await connection.query("BEGIN", logger: TestCluster.logger).consume()
                try await connection.query("LOCK TABLE rate_limits IN ACCESS EXCLUSIVE MODE", logger: TestCluster.logger).consume()
                for _ in 0..<5 {
                    let response = try await tenant.call(.get, "/api/pets")
                    #expect(response.status == .ok)
                    #expect(response.headers[.remaining].flatMap(Int.init) != nil, "answered from this process's count, not as unknown")
                    if response.status == .ok { admitted += 1 }
                }
                try await connection.query("ROLLBACK", logger: TestCluster.logger).consume()
            }
            // Counted once the store answers: at the latest when the server stops (settle), before
            // its pools close.
            await app.dependencies.rateLimiter?.settle()
            let after = try await counted()
            // At least: a charge may also take a lease for what comes next.
            #expect(after >= before + Int32(admitted), "every request admitted on credit is counted: \(before) then \(after)")
        }
    }
}

extension RateLimitTests {
    /// A lease lives two seconds. When demand falls, it runs out with many requests left, which
    /// the next take gives back: that lowers the database's count, and the take must still renew
    /// the lease. Once it did not, and from then on every request went to the database.
    @Test func `a lease that expires after demand fell is renewed, and requests stay off the database`() async throws {
        try await withApp(.router) { app, client in
            _ = try await app.tenantClient(client, slug: "steady")
            let record = try #require(try await app.catalog.tenant(slug: "steady"))
            let limiter = try #require(app.dependencies.rateLimiter)
            func load(for duration: Duration, every pause: Duration) async throws -> Int {
                let until = ContinuousClock.now + duration
                var takes = 0
                while ContinuousClock.now < until {
                    guard case .allowed = await limiter.take(record) else {
                        Issue.record("a request was refused under a generous quota")
                        return takes
                    }
                    takes += 1
                    try await Task.sleep(for: pause)
                }
                return takes
            }
            // Near a thousand requests a second leases two seconds' worth; then a tenth of that
            // outlives the lease, which expires with most of it left.
            _ = try await load(for: .milliseconds(1200), every: .milliseconds(1))
            _ = try await load(for: .milliseconds(2500), every: .milliseconds(10))
            let before = limiter.storeUsage.statements
            let takes = try await load(for: .seconds(1), every: .milliseconds(10))
            let statements = limiter.storeUsage.statements - before
            #expect(takes > 50)
            #expect(statements < 10, "\(statements) statements to the store for \(takes) requests")
        }
    }
}

@Suite struct RateLimitBatchTests {
    let hour: Int64 = 3_600_000_000

    @Test func `a batch of takes decides each in the order given for its tenant, whatever the tenant order`() async throws {
        let database = try await TestCluster.shared.database()
        let first = UUID(uuidString: "ffffffff-0000-4000-8000-000000000000")!
        let second = UUID(uuidString: "00000000-0000-4000-8000-000000000000")!
        let tenants = [first, second, first, first, second]
        let wanted: [Int32] = [1, 2, 1, 1, 1]
        let quotas: [Int32] = [100, 100, 100, 100, 100]
        let periods = [Int64](repeating: hour, count: 5)
        let emissions = [Int64](repeating: 36_000_000, count: 5)
        let bursts = [Int32](repeating: 2, count: 5)
        let result = try await rows(database.appURL, """
            SELECT ord, granted, used FROM quota_take_many(\(tenants), \(wanted), \(quotas), \(periods), \(emissions), \(bursts)) ORDER BY ord
            """, as: (Int32, Int32, Int32).self)
        #expect(result.map(\.0) == [1, 2, 3, 4, 5], "one row per take, numbered as given")
        // Burst 2: the first tenant's takes get 1, 1, 0; the second's 2 then 0.
        #expect(result.map(\.1) == [1, 2, 1, 0, 0])
        #expect(result.map(\.2) == [1, 2, 2, 2, 2], "the window's count after each take")
    }

    @Test func `requests given back are available again, and only as many as were given back`() async throws {
        let database = try await TestCluster.shared.database()
        let tenant = UUID()
        let at: Int64 = 1_000 * hour
        func take(_ wanted: Int32, returned: Int32, from window: Int64 = 1_000 * 3_600_000_000, at clock: Int64 = 1_000 * 3_600_000_000)
            async throws -> (Int32, Int32) {
            let row = try await rows(database.appURL, """
                SELECT granted, used FROM quota_take_many(ARRAY[\(tenant)], ARRAY[\(wanted)], ARRAY[8], ARRAY[\(hour)], ARRAY[36000000::bigint],
                                                          ARRAY[5], \(clock), ARRAY[\(returned)], ARRAY[\(window)])
                """, as: (Int32, Int32).self)
            return row.first ?? (-1, -1)
        }
        #expect(try await take(5, returned: 0) == (5, 5), "the whole burst")
        #expect(try await take(1, returned: 0) == (0, 5))
        #expect(try await take(4, returned: 3) == (3, 5), "three were not spent and came back, to the burst and the count")
        #expect(try await take(1, returned: 0) == (0, 5), "and no more than those")
        // The next hour: the burst is whole, the count starts afresh, and what was leased in the
        // previous hour is not subtracted from it.
        #expect(try await take(2, returned: 2, from: at, at: at + hour) == (2, 2))
        #expect(try await take(9, returned: 0, at: at + hour + 10 * 36_000_000) == (5, 7))
        #expect(try await take(9, returned: 0, at: at + hour + 20 * 36_000_000) == (1, 8), "the quota of 8 binds before the burst")
    }
}
