import Foundation
import Logging
import PostgresNIO
import Synchronization

/// A transaction a request holds open around its whole command, so that whatever the command
/// writes (events, catalog rows) commits together with a record of its response, or not at all.
/// The idempotency layer opens it; command code joins it through `withCommandTransaction`, and
/// work that must see the commit (projection catch-up, wake-ups) waits in `afterCommit`.
public final class CommandTransaction: Sendable {
    @TaskLocal public static var current: CommandTransaction?

    public let tenant: UUID
    let connection: PostgresConnection
    private let deferred = Mutex<[@Sendable () async -> Void]>([])
    private let savepoints = Atomic<Int>(0)

    public init(tenant: UUID, connection: PostgresConnection) {
        self.tenant = tenant
        self.connection = connection
    }

    /// Runs `action` once the transaction has committed; dropped if it rolls back.
    public func afterCommit(_ action: @escaping @Sendable () async -> Void) {
        deferred.withLock { $0.append(action) }
    }

    /// Runs what waited for the commit, in order.
    public func committed() async {
        for action in deferred.withLock({ actions in defer { actions = [] }; return actions }) { await action() }
    }

    /// `body` in a savepoint of this transaction: a failure (a version conflict the command
    /// retries) undoes only what `body` did.
    func withSavepoint<Result: Sendable>(logger: Logger, _ body: (PostgresConnection) async throws -> Result) async throws -> Result {
        let name = "command_\(savepoints.wrappingAdd(1, ordering: .relaxed).newValue)"
        try await connection.query(PostgresQuery(unsafeSQL: "SAVEPOINT \(name)"), logger: logger).consume()
        do {
            let result = try await body(connection)
            try await connection.query(PostgresQuery(unsafeSQL: "RELEASE SAVEPOINT \(name)"), logger: logger).consume()
            return result
        } catch {
            try? await connection.query(PostgresQuery(unsafeSQL: "ROLLBACK TO SAVEPOINT \(name)"), logger: logger).consume()
            throw error
        }
    }
}

extension PostgresClient {
    /// The transaction a command writes in: a savepoint of the request's `CommandTransaction`
    /// when one is open for this tenant, a transaction of its own (entered into the tenant)
    /// otherwise. Either way `body` runs as the tenant, with row-level security on.
    public func withCommandTransaction<Result: Sendable>(
        tenant: UUID, logger: Logger, _ body: @Sendable (PostgresConnection) async throws -> Result
    ) async throws -> Result {
        if let ambient = CommandTransaction.current, ambient.tenant == tenant {
            return try await ambient.withSavepoint(logger: logger, body)
        }
        return try await withTenantTransaction(tenant, logger: logger) { connection in try await body(connection) }
    }
}
