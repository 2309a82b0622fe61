import Database
import EventLog
import Foundation
import Hummingbird
import HummingbirdCore
import Logging
import PostgresNIO
import Projectors
import ServiceLifecycle
import Tenancy

/// Everything the HTTP layer needs, built once per process.
public struct AppDependencies: Sendable {
    /// The request pool: handlers and the command path.
    public let client: PostgresClient
    /// A small pool of its own for background work (projectors, relay, security log, outbox),
    /// so that a burst of requests cannot starve it, nor it the requests.
    public let backgroundClient: PostgresClient
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
    public var pools: [(name: String, client: PostgresClient, maximum: Int)] = []
    /// Filled in as the router is built.
    public let routes = RouteTable()
    public let logger: Logger

    public init(
        client: PostgresClient, backgroundClient: PostgresClient? = nil, migrator: Migrator, resolver: TenantResolver = TenantResolver(),
        catalogCacheTTL: Duration = .seconds(2), keyCacheTTL: Duration = .seconds(5), securityFlushInterval: Duration = .milliseconds(50),
        rateLimits: RateLimits? = .defaults, rateLimitFailureMode: RateLimiter.FailureMode = .open,
        metricsEnabled: Bool = true, tenantLabelCap: Int = 500, idempotencyRetention: Duration = .seconds(86_400),
        signer: CheckpointSigner = .ephemeral(), checkpointInterval: Duration = .seconds(900),
        logger: Logger
    ) {
        let background = backgroundClient ?? client
        let metrics = metricsEnabled ? AppMetrics(tenantLabelCap: tenantLabelCap, logger: logger) : nil
        var observer: EventStore.AppendObserver?
        var lagObserver: (@Sendable (String, [Double]) -> Void)?
        if let metrics {
            observer = { tenant, types in metrics.appended(tenant: tenant, types: types) }
            lagObserver = { name, lags in metrics.projected(name, lags: lags) }
        }
        let store = EventStore(client: client, observer: observer, logger: logger)
        let catalog = Catalog(client: client, store: store, cacheTTL: catalogCacheTTL, logger: logger)
        self.client = client
        self.backgroundClient = background
        self.store = store
        self.catalog = catalog
        self.authenticator = Authenticator(client: client, cacheTTL: keyCacheTTL, logger: logger)
        self.securityLog = SecurityLog(
            client: background, store: EventStore(client: background, signal: store.signal, observer: observer, logger: logger),
            interval: securityFlushInterval, logger: logger)
        let runtime = ProjectionRuntime(client: background, store: EventStore(client: background, signal: store.signal, logger: logger),
                                        lagObserver: lagObserver, logger: logger)
        self.runtime = runtime
        self.provisioner = Provisioner(catalog: catalog, runtime: runtime, logger: logger)
        self.migrator = migrator
        self.resolver = resolver
        self.rateLimiter = rateLimits.map { RateLimiter(client: client, limits: $0, failureMode: rateLimitFailureMode, logger: logger) }
        self.rateLimitLedger = rateLimits.map { _ in RateLimitLedger(client: background, logger: logger) }
        self.metrics = metrics
        self.idempotencyRetention = idempotencyRetention
        self.signer = signer
        self.checkpointInterval = checkpointInterval
        self.logger = logger
    }

    /// The background services besides the HTTP server and the database client, in start order.
    public func backgroundServices(outboxDirectory: URL) -> [any Service] {
        let ledger: [any Service] = rateLimitLedger.map { [$0] } ?? []
        return ledger + [
            NotificationRelay(client: backgroundClient, signal: store.signal, logger: logger),
            runtime,
            securityLog,
            OutboxDispatcher(client: backgroundClient, sink: FileOutboxSink(directory: outboxDirectory, logger: logger), logger: logger),
            IdempotencyJanitor.service(client: backgroundClient, interval: .seconds(600), logger: logger),
            CheckpointSchedule.service(store: EventStore(client: backgroundClient, signal: store.signal, logger: logger), signer: signer,
                                       interval: checkpointInterval, logger: logger),
        ]
    }
}

/// Builds the HTTP application: the router with its middleware and routes.
///
/// The caller runs the returned application inside a `ServiceGroup` after the database client,
/// so that on SIGTERM the HTTP server stops first and in-flight requests still reach the database.
public enum ApplicationBuilder {
    public static func router(_ dependencies: AppDependencies, configuration: ServerConfiguration) -> Router<AppRequestContext> {
        let router = Router(context: AppRequestContext.self)
        router.add(middleware: RequestIDMiddleware())
        router.add(middleware: AccessLogMiddleware(metrics: dependencies.metrics))
        router.add(middleware: ProblemMiddleware())
        router.add(middleware: SingleHeaderMiddleware())
        router.add(middleware: MethodNotAllowedMiddleware(table: dependencies.routes))
        HealthRoutes(client: dependencies.client, migrator: dependencies.migrator, timeout: configuration.readinessTimeout)
            .register(on: router, table: dependencies.routes)
        OpenAPIRoutes(resolver: dependencies.resolver, port: configuration.port, table: dependencies.routes).register(on: router)
        let checkpoints = CheckpointRoutes(catalog: dependencies.catalog, signer: dependencies.signer, table: dependencies.routes)
        checkpoints.registerOpen(on: router)
        AdminPageRoutes().register(on: router)
        if let metrics = dependencies.metrics {
            let scrape = router.group("/metrics")
                .add(middleware: PlatformAccessMiddleware(authenticator: dependencies.authenticator))
                .group(context: PlatformRequestContext.self)
            MetricsRoutes(metrics: metrics, runtime: dependencies.runtime, catalog: dependencies.catalog, limiter: dependencies.rateLimiter, pools: dependencies.pools, table: dependencies.routes)
                .register(on: scrape)
        }

        // One slot per request that may use the database: each tenant (and the platform) holds
        // at most its share of the request pool.
        let poolSize = dependencies.pools.first?.maximum ?? 20
        let bulkhead = Bulkhead(capacity: poolSize, perKey: Int(Double(poolSize) * configuration.tenantPoolShare),
                                wait: configuration.connectionWaitTimeout)

        let idempotency = IdempotencyMiddleware(catalog: dependencies.catalog, client: dependencies.client, signal: dependencies.store.signal,
                                                retention: dependencies.idempotencyRetention, logger: dependencies.logger)
        let admin = router.group("/api/admin")
            .add(middleware: BulkheadMiddleware(bulkhead: bulkhead) { _ in "platform" })
            .add(middleware: PlatformAccessMiddleware(authenticator: dependencies.authenticator))
            .add(middleware: idempotency)
            .group(context: PlatformRequestContext.self)
        AdminTenantRoutes(catalog: dependencies.catalog, provisioner: dependencies.provisioner, table: dependencies.routes).register(on: admin)
        SecurityEventRoutes(client: dependencies.client, catalog: dependencies.catalog, table: dependencies.routes).register(on: admin)
        AnalyticsRoutes(client: dependencies.client, table: dependencies.routes).register(on: admin)
        ProjectionRoutes(runtime: dependencies.runtime, table: dependencies.routes).register(on: admin)
        checkpoints.register(on: admin)

        var tenantMiddleware = router.group("/api")
            .add(middleware: BulkheadMiddleware(bulkhead: bulkhead) { "tenant:" + ($0.tenantSlug ?? "") })
            .add(middleware: TenantAccessMiddleware(catalog: dependencies.catalog, authenticator: dependencies.authenticator,
                                                    securityLog: dependencies.securityLog))
        if let limiter = dependencies.rateLimiter {
            tenantMiddleware = tenantMiddleware.add(middleware: RateLimitMiddleware(limiter: limiter, ledger: dependencies.rateLimitLedger, metrics: dependencies.metrics))
        }
        let tenant = tenantMiddleware
            .add(middleware: idempotency)
            .group(context: TenantRequestContext.self)
        TenantRoutes(catalog: dependencies.catalog, authenticator: dependencies.authenticator, table: dependencies.routes).register(on: tenant)
        PetRoutes(catalog: dependencies.catalog, runtime: dependencies.runtime, table: dependencies.routes, logger: dependencies.logger)
            .register(on: tenant)
        ConfigRoutes(catalog: dependencies.catalog, runtime: dependencies.runtime, table: dependencies.routes, logger: dependencies.logger)
            .register(on: tenant)
        EventRoutes(catalog: dependencies.catalog, signer: dependencies.signer, table: dependencies.routes).register(on: tenant)
        checkpoints.register(on: tenant)
        return router
    }

    /// The router behind tenant resolution: what the server and in-process tests run.
    public static func responder(
        _ dependencies: AppDependencies, configuration: ServerConfiguration
    ) -> DeadlineResponder<TenantResolvingResponder<RouterResponder<AppRequestContext>>> {
        DeadlineResponder(
            timeout: configuration.requestTimeout,
            inner: TenantResolvingResponder(resolver: dependencies.resolver, inner: router(dependencies, configuration: configuration).buildResponder())
        )
    }

    /// The HTTP/1.1 channel `application` serves (malformed requests answered in problem+json),
    /// without its slow-client deadlines: for in-process tests.
    public static var server: HTTPServerBuilder {
        .http1(configuration: .petstore())
    }

    /// The server: the responder behind HTTP/1.1 with slow clients cut off and connections capped.
    public static func application(
        _ dependencies: AppDependencies, configuration: ServerConfiguration, logger: Logger
    ) -> Application<DeadlineResponder<TenantResolvingResponder<RouterResponder<AppRequestContext>>>> {
        Application(
            responder: responder(dependencies, configuration: configuration),
            server: .guardedHTTP1(headerTimeout: configuration.headerTimeout, idleTimeout: configuration.idleTimeout),
            configuration: .init(
                address: .hostname(configuration.host, port: configuration.port), serverName: "petstore",
                availableConnectionsDelegate: CappedConnections(maximum: configuration.maxConnections, logger: logger)
            ),
            logger: logger
        )
    }
}
