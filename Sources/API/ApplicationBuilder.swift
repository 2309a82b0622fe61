import Database
import Hummingbird
import Logging
import PostgresNIO

/// Builds the HTTP application: the router with its middleware and routes.
///
/// The caller runs the returned application inside a `ServiceGroup` after the database client,
/// so that on SIGTERM the HTTP server stops first and in-flight requests still reach the database.
public enum ApplicationBuilder {
    public static func router(client: PostgresClient, migrator: Migrator, configuration: ServerConfiguration) -> Router<AppRequestContext> {
        let router = Router(context: AppRequestContext.self)
        router.add(middleware: ProblemMiddleware())
        HealthRoutes(client: client, migrator: migrator, timeout: configuration.readinessTimeout).register(on: router)
        return router
    }

    public static func application(
        client: PostgresClient, migrator: Migrator, configuration: ServerConfiguration, logger: Logger
    ) -> some ApplicationProtocol {
        Application(
            router: router(client: client, migrator: migrator, configuration: configuration),
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "petstore"),
            logger: logger
        )
    }
}
