import API
import ArgumentParser
import Database
import Foundation
import Hummingbird
import Logging
import NIOCore
import PostgresNIO
import ServiceLifecycle

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Migrate the database and serve the HTTP API until SIGINT or SIGTERM."
    )

    @OptionGroup var options: CommonOptions

    @Option(help: "Address to listen on. (env: HOST, default: 0.0.0.0)")
    var host: String?

    @Option(help: "Port to listen on. (env: PORT, default: 8080)")
    var port: Int?

    @Option(name: .customLong("pool-size"), help: "Most database connections the server opens. (env: POOL_SIZE, default: 20)")
    var poolSize: Int?

    var resolvedPort: Int {
        get throws {
            guard let value = port ?? CommonOptions.environment["PORT"].map({ Int($0) ?? -1 }) else { return 8080 }
            guard (1...65535).contains(value) else { throw ValidationError("port must be a number from 1 to 65535") }
            return value
        }
    }

    var resolvedPoolSize: Int {
        get throws {
            guard let value = poolSize ?? CommonOptions.environment["POOL_SIZE"].map({ Int($0) ?? -1 }) else { return 20 }
            guard (1...1000).contains(value) else { throw ValidationError("pool size must be a number from 1 to 1000") }
            return value
        }
    }

    func validate() throws {
        _ = try resolvedPort
        _ = try resolvedPoolSize
    }

    func run() async throws {
        let logger = options.bootstrapLogging()
        let configuration = ServerConfiguration(host: host ?? CommonOptions.environment["HOST"] ?? "0.0.0.0", port: try resolvedPort)
        let target = try await options.database(logger: logger)
        defer { target.stopClusterIfOurs() }

        let migrator = try Migrator()
        try await migrator.migrate(target.ownerURL, logger: logger)

        let client = PostgresClient(
            configuration: target.appURL.clientConfiguration(maximumConnections: try resolvedPoolSize),
            backgroundLogger: logger
        )
        let application = ApplicationBuilder.application(client: client, migrator: migrator, configuration: configuration, logger: logger)
        let group = ServiceGroup(
            configuration: .init(
                services: [.init(service: client), .init(service: application)],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger
            )
        )
        do {
            try await group.run()
        } catch let error as IOError where error.errnoCode == EADDRINUSE {
            throw ServeError("cannot listen on \(configuration.host):\(configuration.port): the address is already in use")
        } catch let error as IOError {
            throw ServeError("cannot listen on \(configuration.host):\(configuration.port): \(error.description)")
        }
        logger.info("server stopped")
    }
}

struct ServeError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
