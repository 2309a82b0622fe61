import Logging
import NIOPosix
import PostgresNIO

extension DatabaseURL {
    /// Opens one connection (not a pool) for administrative work: bootstrapping, creating
    /// databases, migrating. Connection failures become one readable `DatabaseError`.
    /// `role`, when given, is set in the startup packet (as the pools do with the application role).
    @discardableResult
    public func withConnection<Result: Sendable>(
        logger: Logger, role: String? = nil,
        _ body: (PostgresConnection) async throws -> Result
    ) async throws -> Result {
        let connection: PostgresConnection
        do {
            var configuration = PostgresConnection.Configuration(
                host: host, port: port, username: username, password: password, database: database, tls: .disable
            )
            if let role { configuration.options.additionalStartupParameters = [("role", role)] }
            if tls != .disable {
                let context = try NIOSSLContext(configuration: .makeClientConfiguration())
                configuration.tls = tls == .require ? .require(context) : .prefer(context)
            }
            configuration.options.connectTimeout = .seconds(10)
            connection = try await PostgresConnection.connect(
                on: MultiThreadedEventLoopGroup.singleton.any(), configuration: configuration, id: 0, logger: logger
            )
        } catch {
            throw DatabaseError(.unreachable, "cannot connect to \(self): \(Self.describe(error))")
        }
        do {
            let result = try await body(connection)
            try? await connection.close()
            return result
        } catch {
            try? await connection.close()
            throw error
        }
    }

    /// A one-line, password-free account of a connection or query error.
    public static func describe(_ error: any Error) -> String {
        if let error = error as? PSQLError {
            if let message = error.serverInfo?[.message] {
                let code = error.serverInfo?[.sqlState].map { " (SQLSTATE \($0))" } ?? ""
                return message + code
            }
            if let underlying = error.underlying { return "\(underlying)" }
            return "\(error.code)"
        }
        if let error = error as? PostgresTransactionError {
            return describe(error.closureError ?? error.commitError ?? error.beginError ?? error)
        }
        if let error = error as? DatabaseError { return error.message }
        // The module errors above this one keep their cause for logs in debugDescription.
        if let error = error as? any CustomDebugStringConvertible { return error.debugDescription }
        return "\(error)"
    }
}

extension PostgresConnection {
    /// Runs trusted SQL text (from our own files or fixed strings, never from input) to its end.
    /// The rows are read and dropped: a statement's error may arrive with its rows, and an unread
    /// error would surface only as "transaction aborted" on the next statement.
    package func run(trusted sql: String, logger: Logger) async throws {
        try await query(PostgresQuery(unsafeSQL: sql), logger: logger).consume()
    }

    /// Runs a statement to its end, dropping its rows.
    package func execute(_ query: PostgresQuery, logger: Logger) async throws {
        try await self.query(query, logger: logger).consume()
    }
}

/// A superuser connection for bootstrapping a local cluster's roles and database.
struct SuperuserSession {
    let connection: PostgresConnection
    let logger: Logger

    func execute(_ sql: String) async throws {
        try await connection.run(trusted: sql, logger: logger)
    }

    func count(_ sql: String) async throws -> Int {
        var count = 0
        for try await _ in try await connection.query(PostgresQuery(unsafeSQL: sql), logger: logger) { count += 1 }
        return count
    }

    static func run(url: DatabaseURL, logger: Logger, _ body: (SuperuserSession) async throws -> Void) async throws(DatabaseError) {
        do {
            try await url.withConnection(logger: logger) { connection in
                try await body(SuperuserSession(connection: connection, logger: logger))
            }
        } catch let error as DatabaseError {
            throw error
        } catch {
            throw DatabaseError(.clusterFailed, "cannot prepare the local cluster: \(DatabaseURL.describe(error))")
        }
    }
}

extension AsyncSequence {
    /// Every element, in order: for the short row sets of catalog and maintenance queries.
    package func all() async throws -> [Element] {
        var all: [Element] = []
        for try await element in self { all.append(element) }
        return all
    }
}
