import Crypto
import Foundation
import Logging
import PostgresNIO

/// One numbered SQL file of `Schema/`.
public struct Migration: Sendable, Equatable {
    public let version: Int
    public let name: String
    public let sql: String

    /// SHA-256 of the file's text: an applied migration whose text changed is refused.
    public var checksum: String {
        SHA256.hash(data: Data(sql.utf8)).map { String(format: "%02x", $0) }.joined()
    }

    public init(version: Int, name: String, sql: String) {
        self.version = version
        self.name = name
        self.sql = sql
    }

    /// Parses `NNNN_name.sql` file names into migrations, in version order.
    public static func from(files: [(name: String, sql: String)]) throws(DatabaseError) -> [Migration] {
        var migrations: [Migration] = []
        for file in files {
            let stem = file.name.hasSuffix(".sql") ? String(file.name.dropLast(4)) : file.name
            let parts = stem.split(separator: "_", maxSplits: 1)
            guard parts.count == 2, parts[0].allSatisfy(\.isNumber), let version = Int(parts[0]), version > 0 else {
                throw DatabaseError(.invalidMigration, "migration file \(file.name) is not named NNNN_name.sql")
            }
            if let clash = migrations.first(where: { $0.version == version }) {
                throw DatabaseError(.invalidMigration, "migrations \(clash.name) and \(file.name) share version \(version)")
            }
            migrations.append(Migration(version: version, name: file.name, sql: file.sql))
        }
        return migrations.sorted { $0.version < $1.version }
    }

    /// The migrations of this build's `Schema/` folder.
    public static func schema() throws(DatabaseError) -> [Migration] {
        try from(files: EmbeddedSchema.files)
    }
}

/// Applies `Schema/` migrations in order, each in its own transaction, recorded with its checksum.
///
/// Two migrators on one database take turns on an advisory lock, so running `petstore migrate`
/// while a server starts is safe: the second finds the work done.
public struct Migrator: Sendable {
    /// Arbitrary but fixed: "petstore" in ASCII.
    static let lockKey: Int64 = 0x7065_7473_746f_7265

    public let migrations: [Migration]

    public init(migrations: [Migration]) {
        self.migrations = migrations
    }

    public init() throws(DatabaseError) {
        self.init(migrations: try Migration.schema())
    }

    public struct Status: Sendable, Equatable {
        public let applied: [Int]
        public let pending: [Migration]
        public var isCurrent: Bool { pending.isEmpty }
    }

    /// Brings the database at `url` (connecting as the schema's owner) to the latest version.
    /// Returns the migrations it applied.
    @discardableResult
    public func migrate(_ url: DatabaseURL, logger: Logger) async throws -> [Migration] {
        try await url.withConnection(logger: logger) { connection in
            try await migrate(on: connection, logger: logger)
        }
    }

    public func migrate(on connection: PostgresConnection, logger: Logger) async throws -> [Migration] {
        do {
            try await connection.execute("SELECT pg_advisory_lock(\(Self.lockKey))", logger: logger)
        } catch {
            throw DatabaseError(.migrationFailed, "cannot take the migration lock: \(DatabaseURL.describe(error))")
        }
        do {
            let applied = try await apply(on: connection, logger: logger)
            try await connection.execute("SELECT pg_advisory_unlock(\(Self.lockKey))", logger: logger)
            return applied
        } catch {
            try? await connection.execute("SELECT pg_advisory_unlock(\(Self.lockKey))", logger: logger)
            throw error
        }
    }

    private func apply(on connection: PostgresConnection, logger: Logger) async throws -> [Migration] {
        try await connection.run(trusted: """
            CREATE TABLE IF NOT EXISTS schema_migrations (
              version    integer PRIMARY KEY,
              name       text NOT NULL,
              checksum   text NOT NULL,
              applied_at timestamptz NOT NULL DEFAULT now()
            )
            """, logger: logger)
        let recorded = try await recorded(on: connection, logger: logger)
        try check(recorded: recorded)
        var applied: [Migration] = []
        for migration in migrations where recorded[migration.version] == nil {
            logger.info("applying migration", metadata: ["migration": "\(migration.name)"])
            do {
                try await connection.withTransaction(logger: logger) { connection in
                    for statement in SQLScript.statements(in: migration.sql) {
                        try await connection.run(trusted: statement, logger: logger)
                    }
                    try await connection.execute(
                        "INSERT INTO schema_migrations (version, name, checksum) VALUES (\(migration.version), \(migration.name), \(migration.checksum))",
                        logger: logger
                    )
                }
            } catch {
                throw DatabaseError(.migrationFailed, "migration \(migration.name) failed: \(DatabaseURL.describe(error))")
            }
            applied.append(migration)
        }
        return applied
    }

    /// What is applied and what is pending; throws when the database disagrees with this build.
    public func status(on connection: PostgresConnection, logger: Logger) async throws -> Status {
        let exists = try await connection.query("SELECT to_regclass('schema_migrations') IS NOT NULL", logger: logger)
            .collect().first?.decode(Bool.self) ?? false
        let recorded = exists ? try await recorded(on: connection, logger: logger) : [:]
        try check(recorded: recorded)
        return Status(
            applied: recorded.keys.sorted(),
            pending: migrations.filter { recorded[$0.version] == nil }
        )
    }

    private func recorded(on connection: PostgresConnection, logger: Logger) async throws -> [Int: (name: String, checksum: String)] {
        var recorded: [Int: (name: String, checksum: String)] = [:]
        let rows = try await connection.query("SELECT version, name, checksum FROM schema_migrations", logger: logger)
        for try await (version, name, checksum) in rows.decode((Int, String, String).self) {
            recorded[version] = (name, checksum)
        }
        return recorded
    }

    private func check(recorded: [Int: (name: String, checksum: String)]) throws(DatabaseError) {
        for (version, entry) in recorded.sorted(by: { $0.key < $1.key }) {
            guard let migration = migrations.first(where: { $0.version == version }) else {
                throw DatabaseError(
                    .migrationMissing,
                    "the database has migration \(entry.name) applied, which this build does not have: it was made by a newer version"
                )
            }
            guard migration.checksum == entry.checksum else {
                throw DatabaseError(
                    .migrationChanged,
                    "migration \(migration.name) was changed after it was applied (checksum \(entry.checksum.prefix(12)) in the database, \(migration.checksum.prefix(12)) in this build): add a new migration instead of editing an applied one"
                )
            }
        }
    }
}
