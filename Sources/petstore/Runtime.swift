import API
import Database
import Foundation
import Logging
import Operations
import PostgresNIO
import Projectors

extension CommonOptions {
    /// Runs `body` with the database migrated and a small pool running, for one-shot commands.
    func withDependencies<Result: Sendable>(_ body: (AppDependencies) async throws -> Result) async throws -> Result {
        let logger = bootstrapLogging()
        let target = try await database(logger: logger)
        defer { target.stopClusterIfOurs() }
        let migrator = try Migrator()
        try await migrator.migrate(target.ownerURL, logger: logger)
        try await ProjectionInstaller().install(target.ownerURL, logger: logger)
        let client = PostgresClient(configuration: target.appURL.clientConfiguration(maximumConnections: 4), backgroundLogger: logger)
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            defer { group.cancelAll() }
            let retention = try CommonOptions.environment["OFFBOARDING_RETENTION"].map { try Serve.period($0, label: "OFFBOARDING_RETENTION") }
            return try await body(AppDependencies(client: client, migrator: migrator, ownerURL: target.ownerURL,
                                                  offboardingRetention: retention ?? .seconds(30 * 86_400), logger: logger))
        }
    }
}
