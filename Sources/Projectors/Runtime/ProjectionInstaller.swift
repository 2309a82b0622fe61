import Database
import Foundation
import Logging
import PostgresNIO

/// Installs each projection version's tables, as the schema owner (part of `petstore migrate`).
///
/// A version not seen before gets a schema of its own (`proj_NAME_HASH`) with the file's tables,
/// the application role's grants, and a `projections` row in state `building`; the runtime
/// fills it and switches the public views over once it has caught up. The very first version of
/// a projection is switched to at once, since there is nothing older to keep serving.
public struct ProjectionInstaller: Sendable {
    /// "petstore" + 1: a lock of its own, so installing never waits on migrating.
    static let lockKey: Int64 = 0x7065_7473_746f_7266

    public let definitions: [ProjectionDefinition]

    public init(definitions: [ProjectionDefinition] = ProjectionDefinition.all()) {
        self.definitions = definitions
    }

    @discardableResult
    public func install(_ url: DatabaseURL, logger: Logger) async throws -> [ProjectionDefinition] {
        try await url.withConnection(logger: logger) { connection in
            try await connection.execute("SELECT pg_advisory_lock(\(Self.lockKey))", logger: logger)
            do {
                let installed = try await installAll(on: connection, logger: logger)
                try await connection.execute("SELECT pg_advisory_unlock(\(Self.lockKey))", logger: logger)
                return installed
            } catch {
                try? await connection.execute("SELECT pg_advisory_unlock(\(Self.lockKey))", logger: logger)
                throw error
            }
        }
    }

    /// The versions `install` would install, for a dry run.
    public func pending(_ url: DatabaseURL, logger: Logger) async throws -> [ProjectionDefinition] {
        try await url.withConnection(logger: logger) { connection in
            let exists = try await connection.query("SELECT to_regclass('projections') IS NOT NULL", logger: logger)
                .collect().first?.decode(Bool.self) ?? false
            guard exists else { return definitions }
            var known = Set<String>()
            let rows = try await connection.query("SELECT name || ':' || version FROM projections", logger: logger)
            for try await item in rows.decode(String.self) { known.insert(item) }
            return definitions.filter { !known.contains("\($0.name):\($0.version)") }
        }
    }

    private func installAll(on connection: PostgresConnection, logger: Logger) async throws -> [ProjectionDefinition] {
        var installed: [ProjectionDefinition] = []
        for definition in definitions {
            let known = try await connection.query(
                "SELECT state FROM projections WHERE name = \(definition.name) AND version = \(definition.version)", logger: logger
            ).decode(String.self).first(where: { _ in true })
            guard known == nil else { continue }
            let active = try await connection.query(
                "SELECT version FROM projections WHERE name = \(definition.name) AND state = 'active'", logger: logger
            ).decode(String.self).first(where: { _ in true })
            logger.info("installing projection", metadata: ["projection": "\(definition.name)", "version": "\(definition.version)"])
            do {
                try await connection.withTransaction(logger: logger) { connection in
                    // The schema name is built from the file name and a hex hash: safe as an identifier.
                    try await connection.run(trusted: "CREATE SCHEMA \(definition.schemaName)", logger: logger)
                    try await connection.execute("SELECT set_config('search_path', \(definition.schemaName + ", public"), true)", logger: logger)
                    for statement in SQLScript.statements(in: definition.sql) {
                        try await connection.run(trusted: statement, logger: logger)
                    }
                    try await connection.run(trusted: "GRANT USAGE ON SCHEMA \(definition.schemaName) TO petstore_app", logger: logger)
                    try await connection.run(
                        trusted: "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA \(definition.schemaName) TO petstore_app",
                        logger: logger)
                    try await connection.execute("""
                        INSERT INTO projections (name, version, schema_name, tables, state, scope)
                        VALUES (\(definition.name), \(definition.version), \(definition.schemaName), \(definition.tables), 'building',
                                \(definition.scope))
                        """, logger: logger)
                    if active == nil {
                        try await connection.execute("SELECT activate_projection(\(definition.name), \(definition.version))", logger: logger)
                    }
                }
            } catch {
                throw DatabaseError(.migrationFailed, "projection \(definition.name) could not be installed: \(DatabaseURL.describe(error))")
            }
            installed.append(definition)
        }
        return installed
    }
}
