import Crypto
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
/// units of work record beside them. Each is a copy of a template on its server that this
/// build migrated once (`petstore_tenant_template`): a copy takes a fraction of a second where
/// migrating a new database takes seconds.
public enum HomeDatabases {
    /// The database of a tenant: a fixed prefix and the tenant's id, so safe as an identifier.
    public static func name(for tenant: TenantID) -> String {
        "t_" + tenant.description.replacingOccurrences(of: "-", with: "")
    }

    /// What every tenant database is made from: the schema and the projections, never a tenant's rows.
    public static let template = "petstore_tenant_template"

    /// What the template must hold for this build: its migrations and projection versions. Kept
    /// as the template's comment, so a server's template is checked without connecting to it
    /// (a connection to a template makes copying it wait).
    static var fingerprint: String {
        get throws {
            let parts = try Migration.schema().map { "\($0.version):\($0.checksum)" } + ProjectionDefinition.all().map { "\($0.name):\($0.version)" }
            return SHA256.hash(data: Data(parts.joined(separator: ",").utf8)).map { String(format: "%02x", $0) }.joined()
        }
    }

    /// Makes `name` on the server reached by `server` (a login that may create databases) unless
    /// it exists, then applies what this build has that it lacks. Safe to run again after any
    /// failure, and by two processes at once.
    public static func ensure(_ name: String, on server: DatabaseURL, logger: Logger) async throws {
        guard name.range(of: "^t_[0-9a-f]{32}$", options: .regularExpression) != nil else {
            throw DatabaseError(.invalidMigration, "\(name) is not a tenant database name")
        }
        let wanted = try fingerprint
        let copied = try await server.withConnection(logger: logger) { connection -> Bool in
            guard try await !exists(name, on: connection, logger: logger) else { return false }
            try await prepareTemplate(on: connection, server: server, fingerprint: wanted, logger: logger)
            // The name was checked above against a pattern of hex digits.
            for attempt in 1... {
                do {
                    try await connection.run(trusted: "CREATE DATABASE \(name) TEMPLATE \(template)", logger: logger)
                    return true
                } catch let error as PSQLError where error.serverInfo?[.sqlState] == "42P04" {
                    return false  // made by another run meanwhile
                } catch let error as PSQLError where error.serverInfo?[.sqlState] == "55006" && attempt < 20 {
                    // Another copy, or a connection leaving the template, holds it a moment.
                    try await Task.sleep(for: .milliseconds(50 * attempt))
                }
            }
            return false
        }
        guard !copied else { return }
        // A copy of a current template has nothing to apply; a database made by an earlier run
        // (perhaps stopped before it was migrated) gets what it lacks here.
        let url = server.with(database: name)
        try await Migrator().migrate(url, logger: logger)
        try await ProjectionInstaller().install(url, logger: logger)
    }

    /// Brings the server's template to this build ahead of the first onboarding that needs it.
    /// Runs that reach the server through different databases do not wait for each other (the
    /// lock is per database): run it once, before onboarding starts, when that can happen.
    public static func prepareTemplate(on server: DatabaseURL, logger: Logger) async throws {
        let wanted = try fingerprint
        try await server.withConnection(logger: logger) { connection in
            try await prepareTemplate(on: connection, server: server, fingerprint: wanted, logger: logger)
        }
    }

    /// Drops a tenant's database, ending the sessions still in it.
    ///
    /// `WITH (FORCE)` refuses outright (42501) when a session in the database is not this login's
    /// to end, and an autovacuum worker never is (it runs as no role). Plain `DROP DATABASE` ends
    /// autovacuum workers itself and waits up to five seconds for other sessions to leave: so
    /// after that refusal the plain form is tried, a few times, before the failure is reported.
    public static func drop(_ name: String, on connection: PostgresConnection, logger: Logger) async throws {
        guard name.range(of: "^t_[0-9a-f]{32}$", options: .regularExpression) != nil else {
            throw DatabaseError(.invalidMigration, "\(name) is not a tenant database name")
        }
        // The name was checked above against a pattern of hex digits.
        for attempt in 1... {
            do {
                try await connection.run(trusted: "DROP DATABASE IF EXISTS \(name) WITH (FORCE)", logger: logger)
                return
            } catch let error as PSQLError where error.serverInfo?[.sqlState] == "42501" {
                do {
                    try await connection.run(trusted: "DROP DATABASE IF EXISTS \(name)", logger: logger)
                    return
                } catch let error as PSQLError where ["55006", "42501"].contains(error.serverInfo?[.sqlState]) && attempt < 5 {
                    logger.info("database still in use; dropping it again", metadata: ["database": "\(name)", "attempt": "\(attempt)"])
                    try await Task.sleep(for: .milliseconds(200 * attempt))
                }
            }
        }
    }

    private static func exists(_ database: String, on connection: PostgresConnection, logger: Logger) async throws -> Bool {
        try await connection.query("SELECT count(*) FROM pg_database WHERE datname = \(database)", logger: logger)
            .decode(Int.self).first(where: { _ in true }) == 1
    }

    /// Makes the server's template, or brings it to this build when its comment says otherwise.
    /// One run at a time per server (an advisory lock in the login's database): two would close
    /// the template to each other's migration.
    private static func prepareTemplate(on connection: PostgresConnection, server: DatabaseURL, fingerprint: String, logger: Logger) async throws {
        guard try await templateFingerprint(on: connection, logger: logger) != fingerprint else { return }
        try await connection.query("SELECT pg_advisory_lock(hashtextextended(\(template), 0))", logger: logger).consume()
        do {
            try await prepareTemplateLocked(on: connection, server: server, fingerprint: fingerprint, logger: logger)
        } catch {
            _ = try? await connection.query("SELECT pg_advisory_unlock(hashtextextended(\(template), 0))", logger: logger).consume()
            throw error
        }
        try await connection.query("SELECT pg_advisory_unlock(hashtextextended(\(template), 0))", logger: logger).consume()
    }

    private static func templateFingerprint(on connection: PostgresConnection, logger: Logger) async throws -> String?? {
        try await connection.query(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = \(template)", logger: logger
        ).decode(String?.self).first(where: { _ in true })
    }

    private static func prepareTemplateLocked(on connection: PostgresConnection, server: DatabaseURL, fingerprint: String, logger: Logger) async throws {
        // Again under the lock: another run may have finished it meanwhile.
        let current = try await templateFingerprint(on: connection, logger: logger)
        if current == .some(.some(fingerprint)) { return }
        if current == nil {
            do {
                try await connection.run(trusted: "CREATE DATABASE \(template)", logger: logger)
            } catch let error as PSQLError where error.serverInfo?[.sqlState] == "42P04" {}
        }
        try await connection.run(trusted: "ALTER DATABASE \(template) WITH ALLOW_CONNECTIONS true", logger: logger)
        let url = server.with(database: template)
        try await Migrator().migrate(url, logger: logger)
        try await ProjectionInstaller().install(url, logger: logger)
        // Closed to connections so that copies need not wait for one; the fingerprint is of our
        // own making (hex digits), safe in the statement.
        try await connection.run(trusted: "ALTER DATABASE \(template) WITH ALLOW_CONNECTIONS false", logger: logger)
        try await connection.run(trusted: "COMMENT ON DATABASE \(template) IS '\(fingerprint)'", logger: logger)
    }
}
