import Database
import EventLog
import Foundation
import Hummingbird
import HummingbirdCore
import Logging
import Operations
import Projectors
import ServiceLifecycle
import Tenancy

/// Builds the HTTP application: the router with its middleware and routes.
///
/// The caller runs the returned application inside a `ServiceGroup` after the database client,
/// so that on SIGTERM the HTTP server stops first and in-flight requests still reach the database.
public enum ApplicationBuilder {
    /// `routes` is filled in as the router is built: the OpenAPI document and the tests read it.
    public static func router(
        _ dependencies: AppDependencies, configuration: ServerConfiguration, routes: RouteTable = RouteTable(),
        unmapped: UnmappedErrors = UnmappedErrors()
    ) -> Router<AppRequestContext> {
        let router = Router(context: AppRequestContext.self)
        router.add(middleware: RequestIDMiddleware())
        router.add(middleware: AccessLogMiddleware(metrics: dependencies.metrics))
        router.add(middleware: ProblemMiddleware(unmapped: unmapped))
        router.add(middleware: SingleHeaderMiddleware())
        router.add(middleware: MethodNotAllowedMiddleware(table: routes))
        HealthRoutes(dependencies: dependencies, timeout: configuration.readinessTimeout)
            .register(on: router, table: routes)
        OpenAPIRoutes(resolver: dependencies.resolver, port: configuration.port, table: routes).register(on: router)
        let checkpoints = CheckpointRoutes(catalog: dependencies.catalog, signer: dependencies.signer,
                                           commands: CommandResponder(pipeline: dependencies.commands), table: routes)
        checkpoints.registerOpen(on: router)
        AdminPageRoutes().register(on: router)
        if dependencies.metrics != nil {
            let scrape = router.group("/metrics")
                .add(middleware: PlatformAccessMiddleware(authenticator: dependencies.authenticator))
                .group(context: PlatformRequestContext.self)
            MetricsRoutes(dependencies: dependencies, table: routes)
                .register(on: scrape)
        }

        // One slot per request that may use the database: each tenant (and the platform) holds
        // at most its share of the request pool.
        let poolSize = dependencies.requestPoolSize
        let bulkhead = Bulkhead(capacity: poolSize, perKey: Int(Double(poolSize) * configuration.tenantPoolShare),
                                wait: configuration.connectionWaitTimeout)

        let idempotency = IdempotencyMiddleware()
        let commands = CommandResponder(pipeline: dependencies.commands)
        let admin = router.group("/api/admin")
            .add(middleware: BulkheadMiddleware(bulkhead: bulkhead) { _ in "platform" })
            .add(middleware: PlatformAccessMiddleware(authenticator: dependencies.authenticator))
            .add(middleware: idempotency)
            .group(context: PlatformRequestContext.self)
        AdminTenantRoutes(catalog: dependencies.catalog, tenants: dependencies.tenants, provisioner: dependencies.provisioner,
                          onboarding: dependencies.onboarding, commands: commands, mover: dependencies.move(grace: .seconds(2)),
                          table: routes).register(on: admin)
        SecurityEventRoutes(queries: dependencies.securityEvents, catalog: dependencies.catalog, table: routes).register(on: admin)
        AnalyticsRoutes(dependencies: dependencies, table: routes).register(on: admin)
        ProjectionRoutes(runtime: dependencies.runtime, table: routes).register(on: admin)
        ServerRoutes(servers: dependencies.servers, commands: commands, table: routes).register(on: admin)
        checkpoints.register(on: admin)

        var tenantMiddleware = router.group("/api")
            .add(middleware: BulkheadMiddleware(bulkhead: bulkhead) { "tenant:" + ($0.tenantSlug ?? "") })
            .add(middleware: TenantAccessMiddleware(catalog: dependencies.catalog, authenticator: dependencies.authenticator,
                                                    securityLog: dependencies.securityLog))
        if let limiter = dependencies.rateLimiter {
            tenantMiddleware = tenantMiddleware.add(middleware: RateLimitMiddleware(limiter: limiter, ledger: dependencies.rateLimitLedger, metrics: dependencies.metrics,
                                                                                 problems: ProblemMiddleware(unmapped: unmapped)))
        }
        let tenant = tenantMiddleware
            .add(middleware: idempotency)
            .group(context: TenantRequestContext.self)
        TenantRoutes(catalog: dependencies.catalog, tenants: dependencies.tenants, authenticator: dependencies.authenticator, commands: commands,
                     table: routes).register(on: tenant)
        PetRoutes(catalog: dependencies.catalog, pets: dependencies.pets, commands: commands, table: routes).register(on: tenant)
        ConfigRoutes(catalog: dependencies.catalog, config: dependencies.config, commands: commands, table: routes).register(on: tenant)
        EventRoutes(catalog: dependencies.catalog, signer: dependencies.signer, securityEvents: dependencies.securityEvents, table: routes)
            .register(on: tenant)
        checkpoints.register(on: tenant)
        return router
    }

    /// The router behind tenant resolution: what the server and in-process tests run.
    public static func responder(
        _ dependencies: AppDependencies, configuration: ServerConfiguration, routes: RouteTable = RouteTable(),
        unmapped: UnmappedErrors = UnmappedErrors()
    ) -> DeadlineResponder<TenantResolvingResponder<RouterResponder<AppRequestContext>>> {
        DeadlineResponder(
            timeout: configuration.requestTimeout,
            inner: TenantResolvingResponder(
                resolver: dependencies.resolver, inner: router(dependencies, configuration: configuration, routes: routes, unmapped: unmapped).buildResponder())
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
