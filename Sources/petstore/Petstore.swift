import ArgumentParser
import Database
import NIOPosix
import PostgresNIO

struct Petstore: AsyncParsableCommand {
    /// Errors from the database layers print as one readable line, never as a type dump.
    static func runMain() async {
        do {
            var command = try parseAsRoot()
            if var command = command as? any AsyncParsableCommand {
                try await command.run()
            } else {
                try command.run()
            }
        } catch let error as DatabaseError {
            exit(withError: CLIError(error.message))
        } catch let error where error is PSQLError || error is PostgresTransactionError {
            exit(withError: CLIError(DatabaseURL.describe(error)))
        } catch {
            exit(withError: error)
        }
    }

    static let configuration = CommandConfiguration(
        commandName: "petstore",
        abstract: "An event-sourced, multi-tenant pet store backend on PostgreSQL.",
        subcommands: [Serve.self, Migrate.self, TenantCommand.self, ServerCommand.self, KeyCommand.self, ProjectionsCommand.self, ProjectorsCommand.self, AuditCommand.self, AnalyticsCommand.self, DatabaseCommand.self, BenchCommand.self]
    )
}

struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
