import Database
import PostgresNIO

/// Rows of a query, on a connection of its own (tests reading past the app's role, say).
public func rows<each Column: PostgresDecodable & Sendable>(
    _ url: DatabaseURL, _ query: PostgresQuery, as type: (repeat each Column).Type
) async throws -> [(repeat each Column)] {
    try await url.withConnection(logger: TestCluster.logger) { connection in
        let sequence = try await connection.query(query, logger: TestCluster.logger)
        var result: [(repeat each Column)] = []
        for try await row in sequence { result.append(try row.decode((repeat each Column).self)) }
        return result
    }
}

/// The first column of the first row, or nil.
public func scalar<T: PostgresDecodable & Sendable>(_ url: DatabaseURL, _ query: PostgresQuery, as type: T.Type) async throws -> T? {
    try await url.withConnection(logger: TestCluster.logger) { connection in
        try await connection.query(query, logger: TestCluster.logger).decode(T.self).first(where: { _ in true })
    }
}
