import ArgumentParser
import Database
import Projectors

struct Migrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Apply pending Schema/ migrations, install new Projections/ versions, and exit."
    )

    @OptionGroup var options: CommonOptions

    func run() async throws {
        let logger = options.bootstrapLogging()
        let target = try await options.database(logger: logger)
        defer { target.stopClusterIfOurs() }
        let applied = try await Migrator().migrate(target.ownerURL, logger: logger)
        let installed = try await ProjectionInstaller().install(target.ownerURL, logger: logger)
        print(applied.isEmpty ? "schema is up to date" : "applied \(applied.count) migration(s): " + applied.map(\.name).joined(separator: ", "))
        print(installed.isEmpty ? "projections are up to date"
              : "installed projection version(s): " + installed.map { "\($0.name) \($0.version)" }.joined(separator: ", "))
    }
}
