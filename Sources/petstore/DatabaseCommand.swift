import ArgumentParser
import Database
import Projectors
import Foundation

/// Manages the private cluster by hand, for psql sessions and benchmark scripts.
struct DatabaseCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "db",
        abstract: "Start, stop or locate the private PostgreSQL cluster under --data-dir.",
        subcommands: [Start.self, Stop.self]
    )

    struct Start: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Start the private cluster (creating it if needed), migrate it, print its URLs, and leave it running."
        )

        @OptionGroup var options: CommonOptions

        func run() async throws {
            let logger = options.bootstrapLogging()
            let cluster = try await LocalCluster(directory: options.resolvedDataDirectory, logger: logger).start()
            try await Migrator().migrate(cluster.ownerURL, logger: logger)
            try await ProjectionInstaller().install(cluster.ownerURL, logger: logger)
            print("DATABASE_URL=\(cluster.ownerURL.connectionString)")
            print("APP_DATABASE_URL=\(cluster.appURL.connectionString)")
            print("SUPERUSER_DATABASE_URL=\(cluster.superuserURL.connectionString)")
        }
    }

    struct Stop: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Stop the private cluster if it runs.")

        @OptionGroup var options: CommonOptions

        func run() async throws {
            let logger = options.bootstrapLogging()
            try await LocalCluster(directory: options.resolvedDataDirectory, logger: logger).start().stop()
        }
    }
}
