import Database
import Foundation
import Logging
import PostgresNIO
import Projectors

/// Databases of their own for tenants placed in one: made on a registered server and brought to
/// this build, as a step that can be run again until it succeeds.
///
/// A tenant's database has the same schema as the main database (every `Schema/` migration and
/// `Projections/` version), and holds that one tenant: its log, its read models and what its
/// units of work record beside them.
public enum HomeDatabases {
    /// The database of a tenant: a fixed prefix and the tenant's id, so safe as an identifier.
    public static func name(for tenant: TenantID) -> String {
        "t_" + tenant.description.replacingOccurrences(of: "-", with: "")
    }

    /// Makes `name` on the server reached by `server` (a login that may create databases) unless
    /// it exists, then applies what this build has that it lacks. Safe to run again after any
    /// failure, and by two processes at once.
    public static func ensure(_ name: String, on server: DatabaseURL, logger: Logger) async throws {
        guard name.range(of: "^t_[0-9a-f]{32}$", options: .regularExpression) != nil else {
            throw DatabaseError(.invalidMigration, "\(name) is not a tenant database name")
        }
        try await server.withConnection(logger: logger) { connection in
            let exists = try await connection.query("SELECT count(*) FROM pg_database WHERE datname = \(name)", logger: logger)
                .decode(Int.self).first(where: { _ in true }) == 1
            guard !exists else { return }
            do {
                // The name was checked above against a pattern of hex digits.
                try await connection.run(trusted: "CREATE DATABASE \(name)", logger: logger)
            } catch let error as PSQLError where error.serverInfo?[.sqlState] == "42P04" {
                // Made by another run meanwhile.
            }
        }
        let url = server.with(database: name)
        try await Migrator().migrate(url, logger: logger)
        try await ProjectionInstaller().install(url, logger: logger)
    }
}
