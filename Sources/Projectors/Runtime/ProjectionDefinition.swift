import Crypto
import Database
import Foundation

/// A read model's SQL file: its tables and indexes. The content hash is its version.
public struct ProjectionDefinition: Sendable, Equatable {
    public let name: String
    public let sql: String

    public init(name: String, sql: String) {
        self.name = name
        self.sql = sql
    }

    /// The first 12 hex digits of SHA-256 of the file: a changed file is a new version.
    public var version: String {
        String(SHA256.hash(data: Data(sql.utf8)).map { String(format: "%02x", $0) }.joined().prefix(12))
    }

    /// Where this version's tables live.
    public var schemaName: String { "proj_\(name)_\(version)" }

    /// Whose rows the read model holds. A tenant's own (the default) live with the tenant, in
    /// copies of its own for a tenant with a schema of its own; a file whose first lines say
    /// `-- scope: platform` holds rows the platform reads across tenants, kept in the shared
    /// tables for every tenant.
    public var scope: String {
        let header = sql.split(separator: "\n").prefix(while: { $0.hasPrefix("--") })
        return header.contains { $0.replacingOccurrences(of: " ", with: "") == "--scope:platform" } ? "platform" : "tenant"
    }

    /// The tables the file creates, exposed as views once the version is active.
    public var tables: [String] {
        SQLScript.statements(in: sql).compactMap { statement in
            let code = statement.split(separator: "\n").filter { !$0.trimmingCharacters(in: .whitespaces).hasPrefix("--") }.joined(separator: " ")
            let words = code.split(whereSeparator: { $0.isWhitespace })
            guard words.count >= 3, words[0].uppercased() == "CREATE", words[1].uppercased() == "TABLE" else { return nil }
            return String(words[2])
        }
    }

    /// The embedded `Projections/` folder.
    public static func all() -> [ProjectionDefinition] {
        EmbeddedProjections.files.map { ProjectionDefinition(name: String($0.name.dropLast(4)), sql: $0.sql) }
    }

    public static func named(_ name: String) -> ProjectionDefinition? {
        all().first { $0.name == name }
    }
}
