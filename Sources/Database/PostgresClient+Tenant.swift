import Foundation
import Logging
import PostgresNIO

extension PostgresClient {
    /// The one way tenant data is touched: a transaction that first sets `app.tenant_id`
    /// (transaction-local, so a pooled connection never carries it into the next borrower) and
    /// switches to the `petstore_app` role, under which row-level security applies.
    public func withTenantTransaction<Result>(
        _ tenant: UUID,
        logger: Logger,
        isolation: isolated (any Actor)? = #isolation,
        _ body: (PostgresConnection) async throws -> sending Result
    ) async throws -> sending Result {
        try await withTransaction(logger: logger, isolation: isolation) { connection in
            try await connection.execute(EnterTenant(tenant: tenant), logger: logger).consume()
            return try await body(connection)
        }
    }
}

/// Sets the tenant and the role for the rest of the transaction.
struct EnterTenant: PostgresPreparedStatement {
    static let sql = "SELECT set_config('app.tenant_id', $1::text, true), set_config('role', 'petstore_app', true)"
    typealias Row = (String, String)

    let tenant: UUID

    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings()
        bindings.append(tenant.uuidString.lowercased())
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Row.self) }
}

extension AsyncSequence {
    /// Reads a result to its end, for statements whose rows nobody needs.
    package func consume() async throws {
        for try await _ in self {}
    }
}
