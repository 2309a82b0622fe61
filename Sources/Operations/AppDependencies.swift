import Database
import EventLog
import Foundation
import Logging
import PostgresNIO
import Projectors
import ServiceLifecycle
import Tenancy

/// Everything the HTTP layer needs, built once per process.
public struct AppDependencies: Sendable {
    /// The request pool: handlers and the command path. Not for the layers above: they reach
    /// data through the named operations below, tenants' data through tenant sessions.
    let client: PostgresClient
    /// A small pool of its own for background work (projectors, relay, security log, outbox),
    /// so that a burst of requests cannot starve it, nor it the requests.
    let backgroundClient: PostgresClient
    public let store: EventStore
    public let catalog: Catalog
    public let authenticator: Authenticator
    public let securityLog: SecurityLog
    public let provisioner: Provisioner
    public let runtime: ProjectionRuntime
    public let migrator: Migrator
    public let resolver: TenantResolver
    /// Nil when rate limiting is switched off.
    public let rateLimiter: RateLimiter?
    /// Counts refused requests for the analytics; nil with the limiter.
    public let rateLimitLedger: RateLimitLedger?
    /// Nil when metrics are switched off.
    public let metrics: AppMetrics?
    /// How long a keyed command's response is replayed.
    public let idempotencyRetention: Duration
    /// Signs the tenants' checkpoints.
    public let signer: CheckpointSigner
    public let checkpointInterval: Duration
    /// The pools `/metrics` reports on: name, client, size.
    var pools: [(name: String, client: PostgresClient, maximum: Int)] = []
    /// The size of the request pool, which the per-tenant bulkhead divides.
    public var requestPoolSize: Int { pools.first?.maximum ?? 20 }
    /// The one path of every command: unit of work, Idempotency-Key, recorded response.
    public let commands: CommandPipeline
    /// Keeps the caches current with other processes' catalog changes; nil when not asked for.
    public let catalogInvalidation: CatalogInvalidation?
    /// Connections to tenants' databases of their own; nil when this process has no owner's login.
    public let homePools: HomePools?
    /// The owner's login, which reaches the servers of tenants' databases of their own.
    let ownerURL: DatabaseURL?
    /// How often offboarding tenants past their retention are looked for, and purged.
    public let purgeInterval: Duration
    /// Pages of the pets list served again while the database says they still hold.
    public let petPages = PetPageCache()
    public let logger: Logger

    public init(
        client: PostgresClient, backgroundClient: PostgresClient? = nil, migrator: Migrator, resolver: TenantResolver = TenantResolver(),
        catalogCacheTTL: Duration = .seconds(2), keyCacheTTL: Duration = .seconds(5), securityFlushInterval: Duration = .milliseconds(50),
        rateLimits: RateLimits? = .defaults, rateLimitFailureMode: RateLimiter.FailureMode = .open,
        metricsEnabled: Bool = true, tenantLabelCap: Int = 500, idempotencyRetention: Duration = .seconds(86_400),
        signer: CheckpointSigner = .ephemeral(), checkpointInterval: Duration = .seconds(900),
        catalogNotifications: Bool = false, ownerURL: DatabaseURL? = nil, homeLimits: HomePools.Limits = HomePools.Limits(),
        offboardingRetention: Duration = .seconds(30 * 86_400), purgeInterval: Duration = .seconds(600),
        reads: ReadGate.Limits? = nil, commitLanes: Int = TenantDatabase.defaultCommitLanes, logger: Logger
    ) {
        // With catalog notifications every change reaches the caches when it commits, and the
        // TTLs only bound what a lost notification could leave; without, they are the bound.
        let catalogCacheTTL = catalogNotifications ? .seconds(600) : catalogCacheTTL
        let keyCacheTTL = catalogNotifications ? .seconds(600) : keyCacheTTL
        let background = backgroundClient ?? client
        let metrics = metricsEnabled ? AppMetrics(tenantLabelCap: tenantLabelCap, logger: logger) : nil
        var observer: EventStore.AppendObserver?
        var lagObserver: (@Sendable (String, [Double]) -> Void)?
        if let metrics {
            observer = { tenant, types in metrics.appended(tenant: tenant, types: types) }
            lagObserver = { name, lags in metrics.projected(name, lags: lags) }
        }
        // Databases of their own are reached with the owner's login to each server (the serving
        // role cannot read the servers' logins); without one, no tenant can be placed in one.
        let pools = ownerURL.map { owner in
            HomePools(limits: homeLimits, build: try? HomeDatabases.fingerprint, logger: logger,
                      directory: ServerRegistry.directory(owner: owner, logger: logger))
        }
        self.homePools = pools
        self.ownerURL = ownerURL
        // Requests' reads wait their turn on each server; background work reads on its own pool.
        let store = EventStore(client: client, observer: observer, homeTTL: catalogCacheTTL, pools: pools,
                               reads: reads.map(ReadGate.init), commitLanes: commitLanes, logger: logger)
        let authenticator = Authenticator(client: client, cacheTTL: keyCacheTTL, logger: logger)
        let catalog = Catalog(client: client, store: store, cacheTTL: catalogCacheTTL, databasePlacementAvailable: pools != nil,
                              authenticator: authenticator, offboardingRetention: offboardingRetention, logger: logger)
        self.client = client
        self.backgroundClient = background
        self.store = store
        self.catalog = catalog
        self.authenticator = authenticator
        self.catalogInvalidation = catalogNotifications
            ? CatalogInvalidation(client: background, catalog: catalog, authenticator: authenticator, databases: [store.database], logger: logger)
            : nil
        self.securityLog = SecurityLog(
            client: background, store: EventStore(client: background, signal: store.signal, observer: observer, pools: pools, logger: logger),
            interval: securityFlushInterval, logger: logger)
        let runtime = ProjectionRuntime(client: background, store: EventStore(client: background, signal: store.signal, pools: pools, logger: logger),
                                        projectors: ReadModels.all,
                                        lagObserver: lagObserver, logger: logger)
        self.runtime = runtime
        self.provisioner = Provisioner(catalog: catalog, runtime: runtime, logger: logger)
        self.migrator = migrator
        self.resolver = resolver
        self.rateLimiter = rateLimits.map { RateLimiter(client: client, limits: $0, failureMode: rateLimitFailureMode, logger: logger) }
        self.rateLimitLedger = rateLimits.map { _ in RateLimitLedger(client: background, logger: logger) }
        self.metrics = metrics
        self.idempotencyRetention = idempotencyRetention
        self.commands = CommandPipeline(database: store.database, retention: idempotencyRetention) { [runtime, store] tenant in
            try await runtime.catchUp(tenant: tenant, using: store.database)
        }
        self.signer = signer
        self.checkpointInterval = checkpointInterval
        self.purgeInterval = purgeInterval
        self.logger = logger
    }

    /// The background services besides the HTTP server and the database client, in start order;
    /// a service group stops them in the reverse order, so the pools of databases of their own
    /// come first: they close after everything that uses them has stopped.
    public func backgroundServices(outboxDirectory: URL) -> [any Service] {
        let ledger: [any Service] = (rateLimitLedger.map { [$0] } ?? []) + (rateLimiter.map { [RateLimitSettlement(limiter: $0)] } ?? [])
        return (homePools.map { [HomePoolsShutdown(pools: $0)] } ?? []) + ledger + [
            NotificationRelay(client: backgroundClient, signal: store.signal, logger: logger),
            runtime,
            securityLog,
            OutboxDispatcher(client: backgroundClient, sink: FileOutboxSink(directory: outboxDirectory, logger: logger), logger: logger),
            IdempotencyJanitor.service(client: backgroundClient, interval: .seconds(600), logger: logger),
            CheckpointSchedule.service(store: EventStore(client: backgroundClient, signal: store.signal, pools: homePools, logger: logger), signer: signer,
                                       interval: checkpointInterval, logger: logger),
        ] + (catalogInvalidation.map { [$0] } ?? [])
          + (purge().map { [PurgeSchedule.service(purge: $0, client: backgroundClient, interval: purgeInterval, logger: logger)] } ?? [])
    }

    /// Purges offboarded tenants, signing receipts with `signer` (the checkpoints' key when nil);
    /// nil without the owner's login, which a purge needs.
    public func purge(signer: CheckpointSigner? = nil) -> TenantPurge? {
        ownerURL.map { TenantPurge(catalog: catalog, owner: $0, homePools: homePools, signer: signer ?? self.signer, logger: logger) }
    }

    /// Moves tenants between placements while they serve; nil without the owner's login.
    public func move(grace: Duration = .seconds(5), progress: @escaping @Sendable (String) -> Void = { _ in },
                     beforePhase: @escaping @Sendable (TenantMove.Phase) async throws -> Void = { _ in }) -> TenantMove? {
        ownerURL.map { TenantMove(catalog: catalog, owner: $0, homePools: homePools, logger: logger, grace: grace, progress: progress, beforePhase: beforePhase) }
    }

    /// One round of the purge schedule, as the server runs it every `purgeInterval`: the slugs
    /// of the tenants purged.
    public func purgeDue() async throws -> [String] {
        guard let purge = purge() else { return [] }
        return try await PurgeSchedule.purgeDue(purge: purge, client: client, logger: logger)
    }
}

extension AppDependencies {
    /// Names the pools `/metrics` reports on (the first is the request pool).
    public mutating func reportPools(_ pools: [(name: String, client: PostgresClient, maximum: Int)]) {
        self.pools = pools
    }

    /// The Prometheus exposition of everything measured, with the database's gauges read now.
    public func renderMetrics() async -> [UInt8]? {
        guard let metrics else { return nil }
        return await metrics.render(runtime: runtime, pools: pools, limiter: rateLimiter, groupCommits: store.database.groupCommits) { [catalog] id in try? await catalog.tenant(id: id)?.slug }
    }

    /// Which of this build's migrations the database lacks.
    public func migrationStatus() async throws -> Migrator.Status {
        try await client.withConnection { [migrator, logger] in try await migrator.status(on: $0, logger: logger) }
    }

    /// The platform's analytics over `range`, for every tenant or the one with slug `tenant`.
    public func analyticsReport(range: AnalyticsRange, tenant: String? = nil) async throws -> AnalyticsReport {
        try await AnalyticsReport.read(client: client, range: range, tenant: tenant, logger: logger)
    }

    /// The platform's security log, newest first.
    public var securityEvents: SecurityEventQueries { SecurityEventQueries(client: client, logger: logger) }

    /// Pets, their history and their tenant's settings as the API shows them.
    public var pets: PetOperations { PetOperations(runtime: runtime, logger: logger, pages: petPages) }

    /// The tenant decider's commands (onboarding, plan, status, users, keys).
    public var tenants: TenantCommands { TenantCommands(catalog: catalog) }

    /// Onboarding as the API and the CLI offer it, resuming one that stopped half-way.
    public var onboarding: Onboarding { Onboarding(catalog: catalog, provisioner: provisioner, lockURL: ownerURL) }

    /// The PostgreSQL servers tenants may be placed on.
    public var servers: ServerRegistry { ServerRegistry(client: client, logger: logger) }

    /// Brings tenants' own data to this build (the tenant pass of `petstore migrate`).
    public func tenantMigrator() -> TenantMigrator { TenantMigrator(client: backgroundClient, owner: ownerURL, logger: logger) }

    /// A tenant's configuration as the API shows it.
    public var config: ConfigOperations { ConfigOperations(runtime: runtime, logger: logger) }
}

/// Closes the pools to tenants' databases of their own when the process shuts down.
/// At shutdown, counts what the rate limiter admitted on credit, while the pools still run.
struct RateLimitSettlement: Service {
    let limiter: RateLimiter

    func run() async throws {
        try? await gracefulShutdown()
        await limiter.settle()
    }
}

struct HomePoolsShutdown: Service {
    let pools: HomePools

    func run() async throws {
        try? await gracefulShutdown()
        await pools.shutDown()
    }
}
