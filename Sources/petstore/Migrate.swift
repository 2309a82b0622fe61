import ArgumentParser
import Database

struct Migrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Apply the pending Schema/ migrations and exit."
    )

    @OptionGroup var options: CommonOptions

    func run() async throws {
        let logger = options.bootstrapLogging()
        let target = try await options.database(logger: logger)
        defer { target.stopClusterIfOurs() }
        let applied = try await Migrator().migrate(target.ownerURL, logger: logger)
        print(applied.isEmpty ? "database is up to date" : "applied \(applied.count) migration(s): " + applied.map(\.name).joined(separator: ", "))
    }
}
