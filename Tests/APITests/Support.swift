import API
import Database
import EventLog
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import Operations
import PetstoreTesting
import PostgresNIO
import ServiceLifecycle
import Tenancy
import Synchronization
import Testing

/// A migrated database, the app's dependencies on it, and a platform admin key.
struct TestApp: Sendable {
    let database: TestDatabase
    let dependencies: AppDependencies
    let platformKey: String
    /// The routes the app was built with.
    let routes: RouteTable
    /// Errors that reached HTTP without a mapping.
    let unmapped: UnmappedErrors
    /// The placement `onboard` asks for; nil leaves it to the plan.
    let placement: String?

    var catalog: Catalog { dependencies.catalog }
    var store: EventStore { dependencies.store }
}

/// Runs `body` against the real HTTP stack (`.live`: a server on a free port) unless told otherwise.
func withApp(
    _ testing: TestingSetup = .live, poolSize: Int = 8, securityFlush: Duration = .milliseconds(20),
    rateLimits: RateLimits? = .generous, rateLimitFailure: RateLimiter.FailureMode = .open,
    idempotencyRetention: Duration = .seconds(86_400), tenantLabelCap: Int = 500, logger: Logger = TestCluster.logger,
    configuration: ServerConfiguration = .tests, timeouts: StatementTimeouts? = nil, allowUnmappedErrors: Bool = false,
    placement: String? = nil, commitLanes: Int = TenantDatabase.defaultCommitLanes,
    _ body: @Sendable (TestApp, any TestClientProtocol) async throws -> Void
) async throws {
    // A few apps at a time: on two cores, every app started at once (Swift Testing starts every
    // test together) makes each request wait its turn so long that clients time out. Waiting
    // here costs a test nothing it measures. An app started inside another's body shares its slot.
    if Apps.holdsSlot { return try await withGatedApp() }
    await Apps.gate.enter()
    do {
        try await Apps.$holdsSlot.withValue(true) { try await withGatedApp() }
    } catch {
        await Apps.gate.leave()
        throw error
    }
    await Apps.gate.leave()

    func withGatedApp() async throws {
        // Tenants in databases of their own cost a database each on the second server. An app
        // started inside one that holds a slot shares it (waiting for a second could wait for good).
        let gated = placement == "database" && !DatabaseTests.holdsSlot
        if gated { await DatabaseTests.gate.enter() }
        let visit = Watchdog.shared.enter("\(Test.current?.name ?? "?") [\(placement ?? "-")]")
        defer { Watchdog.shared.leave(visit) }
        try await Watchdog.$visit.withValue(visit) { try await gatedBody(gated) }
    }

    func gatedBody(_ gated: Bool) async throws {
        do {
            try await DatabaseTests.$holdsSlot.withValue(DatabaseTests.holdsSlot || gated) {
                try await withAppInside(testing, poolSize: poolSize, securityFlush: securityFlush, rateLimits: rateLimits, rateLimitFailure: rateLimitFailure,
                                        idempotencyRetention: idempotencyRetention, tenantLabelCap: tenantLabelCap, logger: logger,
                                        configuration: configuration, timeouts: timeouts, allowUnmappedErrors: allowUnmappedErrors,
                                        placement: placement, commitLanes: commitLanes, body)
            }
        } catch {
            if gated { await DatabaseTests.gate.leave() }
            throw error
        }
        if gated { await DatabaseTests.gate.leave() }
    }
}

enum Apps {
    static let gate = Gate(limit: 4)
    @TaskLocal static var holdsSlot = false
}

private func withAppInside(
    _ testing: TestingSetup, poolSize: Int, securityFlush: Duration, rateLimits: RateLimits?, rateLimitFailure: RateLimiter.FailureMode,
    idempotencyRetention: Duration, tenantLabelCap: Int, logger: Logger, configuration: ServerConfiguration, timeouts: StatementTimeouts?,
    allowUnmappedErrors: Bool, placement: String?, commitLanes: Int,
    _ body: @Sendable (TestApp, any TestClientProtocol) async throws -> Void
) async throws {
    let database = try await TestCluster.shared.database()
    try await TenantTemplate.shared.prepare(database.ownerURL)
    let pool = "requests-\(database.name)"
    let client = PostgresClient(configuration: database.appURL.clientConfiguration(maximumConnections: poolSize, pool: pool, timeouts: timeouts),
                                backgroundLogger: logger)
    var dependencies = AppDependencies(client: client, migrator: try Migrator(), keyCacheTTL: .seconds(5),
                                       securityFlushInterval: securityFlush, rateLimits: rateLimits, rateLimitFailureMode: rateLimitFailure,
                                       tenantLabelCap: tenantLabelCap, idempotencyRetention: idempotencyRetention,
                                       ownerURL: database.ownerURL, commitLanes: commitLanes, logger: logger)
    dependencies.reportPools([(pool, client, poolSize)])
    let app = dependencies
    let routes = RouteTable()
    let unmapped = UnmappedErrors()
    let application = Application(
        responder: ApplicationBuilder.responder(app, configuration: configuration, routes: routes, unmapped: unmapped),
        server: ApplicationBuilder.server,
        services: [Traced("request pool", client), Traced("security log", app.securityLog) { "\(app.securityLog.pendingAttempts) pending; \(app.securityLog.activity)" }, Traced("projection runtime", app.runtime) { app.runtime.activityReport() }],
        logger: logger
    )
    Watchdog.mark("starting the app")
    try await application.test(testing) { testClient in
        Watchdog.mark("setting up")
        let key = try await app.catalog.createPlatformKey(name: "tests")
        // Tenants in databases of their own live on the second server, as in a real deployment.
        if placement == "database" { try await app.servers.add(name: "second", url: try await TestCluster.second.serverURL().connectionString) }
        Watchdog.mark("in the test's body")
        try await body(TestApp(database: database, dependencies: app, platformKey: key.value, routes: routes, unmapped: unmapped,
                                  placement: placement), testClient)
        Watchdog.mark("stopping the server and its services")
    }
    Watchdog.mark("closing the home pools")
    await app.homePools?.closeAll()
    // Every error a module throws has its answer in ErrorMapping; one without is a bug here.
    if !allowUnmappedErrors { #expect(unmapped.all.isEmpty, "errors reached HTTP without a mapping: \(unmapped.all)") }
}

/// The placements the API tests run over: each of them must behave the same. `database`
/// tenants live on the second server.
enum Placements {
    static let all = ["shared", "schema", "database"]
}

extension ServerConfiguration {
    /// The defaults, with a request deadline and a connection wait that no parallel test run on
    /// two cores comes near: the tests about them set their own.
    static let tests = ServerConfiguration(requestTimeout: .seconds(60), connectionWaitTimeout: .seconds(30))
}

extension RateLimits {
    /// High enough that tests about other things never meet a limit, low enough to be exact.
    static let generous = try! RateLimits.defaults.overridden(by: "free=1000000/h+100000,basic=1000000/h+100000,premium=1000000/h+100000,enterprise=1000000/h+100000")
}

extension TestApp {
    /// Onboards a tenant through the API and returns its admin key.
    /// A tenant placed anywhere but the shared tables is on a plan that may use that placement.
    func onboard(_ client: some TestClientProtocol, slug: String, plan: String? = nil, placement: String? = nil) async throws -> String {
        let chosen = placement ?? self.placement
        let plan = plan ?? (chosen == nil || chosen == "shared" ? "free" : chosen == "schema" ? "premium" : "enterprise")
        let placement = chosen.map { #","placement":"\#($0)""# + ($0 == "database" ? #","server":"second""# : "") } ?? ""
        let body = #"{"slug":"\#(slug)","name":"Tenant \#(slug)","plan":"\#(plan)"\#(placement)}"#
        return try await client.execute(uri: "/api/admin/tenants", method: .post,
                                        headers: [.authorization: "Bearer \(platformKey)", .contentType: "application/json"],
                                        body: ByteBuffer(string: body)) { response in
            #expect(response.status == .created, "\(String(buffer: response.body))")
            let json = try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any]
            return try #require(json?["admin_api_key"] as? String)
        }
    }

    /// A login to the database holding a tenant's data: the main one, or for a tenant placed in
    /// a database of its own, that one on the second server. A superuser's unless `owner`.
    func dataURL(of slug: String, owner: Bool = false) async throws -> DatabaseURL {
        let record = try #require(try await catalog.tenant(slug: slug))
        guard record.placement == .database, let name = record.location else { return owner ? database.ownerURL : database.superuserURL }
        return owner ? try await TestCluster.second.serverURL().with(database: name) : try await TestCluster.second.superuserURL(database: name)
    }

    /// Events of a type in a tenant's log.
    func events(of type: String, tenant slug: String) async throws -> [RecordedEvent] {
        guard let tenant = try await catalog.tenant(slug: slug) else { return [] }
        return try await store.read(tenant: tenant.id, limit: 100_000).filter { $0.type == type }
    }
}

func headers(_ key: String?, tenant: String? = nil, host: String? = nil) -> HTTPFields {
    var fields = HTTPFields()
    if let key { fields[.authorization] = "Bearer \(key)" }
    if let tenant { fields[HTTPField.Name("X-Tenant-ID")!] = tenant }
    if let host { fields[HTTPField.Name("Host")!] = host }
    return fields
}

/// A response with the per-request header left out, for byte-for-byte comparison.
struct Comparable404: Equatable, CustomStringConvertible {
    let status: Int
    let headers: [String]
    let body: String

    init(_ response: TestResponse) {
        self.init(SentResponse(status: response.status, headers: response.headers, body: response.body))
    }

    init(_ response: SentResponse) {
        status = response.status.code
        // Per-request values: the id, the date and what remains of the quota at that instant.
        headers = response.headers.filter { !["x-request-id", "date", "x-ratelimit-remaining", "x-ratelimit-reset", "ratelimit"].contains($0.name.canonicalName) }
            .map { "\($0.name.canonicalName): \($0.value)" }.sorted()
        body = String(buffer: response.body)
    }

    var description: String { "\(status) \(headers) \(body)" }
}

/// A response from either test client.
struct SentResponse: Sendable {
    let status: HTTPResponse.Status
    let headers: HTTPFields
    let body: ByteBuffer
}

/// Sends a request; a `Host` in `fields` becomes the request's authority on a connection of its
/// own (the test client otherwise always says `localhost`). Needs the `.live` setup for that.
func send(_ client: any TestClientProtocol, _ uri: String, _ method: HTTPRequest.Method, _ fields: HTTPFields,
          body: ByteBuffer? = nil) async throws -> SentResponse {
    var fields = fields
    let hostName = HTTPField.Name("Host")!
    if let host = fields[hostName] {
        let port = try #require(client.port, "a Host header needs the .live test setup")
        fields[hostName] = nil
        let request = TestClient.Request(uri, method: method, authority: host, headers: fields, body: body)
        let response: TestClient.Response = try await TestClient.withClient(host: "127.0.0.1", port: port) { testClient in
            try await testClient.execute(request)
        }
        return SentResponse(status: response.status, headers: response.headers, body: response.body ?? ByteBuffer())
    }
    return try await client.execute(uri: uri, method: method, headers: fields, body: body) { response in
        SentResponse(status: response.status, headers: response.headers, body: response.body)
    }
}

/// The main test server's template for tenants' databases of their own, brought to this build
/// once per run: each test reaches the server through a database of its own, and template runs
/// through different databases do not wait for each other.
actor TenantTemplate {
    static let shared = TenantTemplate()
    private var prepared: Task<Void, any Error>?

    func prepare(_ server: DatabaseURL) async throws {
        if prepared == nil { prepared = Task { try await HomeDatabases.prepareTemplate(on: server, logger: TestCluster.logger) } }
        try await prepared?.value
    }
}

/// At most `limit` holders at a time; the others wait their turn in order.
actor Gate {
    let limit: Int
    private var inside = 0
    private var waiting: [CheckedContinuation<Void, Never>] = []

    init(limit: Int) {
        self.limit = limit
    }

    func enter() async {
        if inside < limit {
            inside += 1
            return
        }
        await withCheckedContinuation { waiting.append($0) }
    }

    func leave() {
        if waiting.isEmpty {
            inside -= 1
        } else {
            waiting.removeFirst().resume()
        }
    }
}

enum DatabaseTests {
    static let gate = Gate(limit: 2)
    @TaskLocal static var holdsSlot = false
}

/// Names the apps that have run for minutes, on standard error: a test that never ends holds its
/// slot in the gates above, and the whole run would otherwise stop without saying where. It
/// watches from a thread of its own, so it still speaks when every task in the process is stuck.
final class Watchdog: Sendable {
    static let shared = Watchdog()
    /// The app the current task runs, for `mark`.
    @TaskLocal static var visit: UUID?

    private struct State {
        var inside: [UUID: (name: String, since: ContinuousClock.Instant)] = [:]
        var phases: [UUID: String] = [:]
        var services: [UUID: [String: @Sendable () -> String]] = [:]
        var reported: Set<UUID> = []
        var watching = false
    }
    private let state = Mutex(State())

    func enter(_ name: String) -> UUID {
        let id = UUID()
        let start = state.withLock { state in
            state.inside[id] = (name, .now)
            defer { state.watching = true }
            return !state.watching
        }
        if start { Thread.detachNewThread { self.watch() } }
        return id
    }

    func leave(_ id: UUID) {
        state.withLock { state in
            state.inside[id] = nil
            state.phases[id] = nil
            state.services[id] = nil
        }
    }

    /// Notes that one of the current task's app's services started or returned.
    static func service(_ name: String, running: Bool, describe: @escaping @Sendable () -> String = { "" }) {
        guard let visit else { return }
        shared.state.withLock { state in
            if running { state.services[visit, default: [:]][name] = describe } else { state.services[visit]?[name] = nil }
        }
    }

    /// Names what the current task's app is doing, for a report that it has run too long.
    static func mark(_ phase: String) {
        guard let visit else { return }
        shared.state.withLock { $0.phases[visit] = phase }
    }

    private func watch() {
        while true {
            Thread.sleep(forTimeInterval: 20)
            let overdue = state.withLock { state in
                let overdue = state.inside.filter { ContinuousClock.now - $0.value.since > .seconds(150) && !state.reported.contains($0.key) }
                state.reported.formUnion(overdue.keys)
                return overdue.map { visit in
                    let running = state.services[visit.key, default: [:]].sorted { $0.key < $1.key }
                        .map { name, describe in
                            let busy = describe()
                            return busy.isEmpty ? name : "\(name) (\(busy))"
                        }.joined(separator: ", ")
                    return "\(visit.value.name), \(state.phases[visit.key] ?? "starting"); services not yet returned: \(running.isEmpty ? "none" : running)"
                }
            }
            for name in overdue {
                FileHandle.standardError.write(Data("WATCHDOG: an app has run for over 150 s: \(name)\n".utf8))
            }
        }
    }
}

/// A service of a test's app that tells the watchdog when it returns: which one a stuck
/// shutdown waits for.
struct Traced: Service {
    let name: String
    let inner: any Service
    /// What the service is busy with, for the report.
    let describe: @Sendable () -> String

    init(_ name: String, _ inner: any Service, describe: @escaping @Sendable () -> String = { "" }) {
        self.name = name
        self.inner = inner
        self.describe = describe
    }

    func run() async throws {
        Watchdog.service(name, running: true, describe: describe)
        defer { Watchdog.service(name, running: false) }
        try await inner.run()
    }
}
