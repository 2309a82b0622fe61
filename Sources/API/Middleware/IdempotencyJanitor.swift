import Database
import Logging
import PostgresNIO
import ServiceLifecycle

/// Deletes expired idempotency keys in small batches, every `interval`. Lookups ignore expired
/// keys anyway; this only keeps the table from growing.
struct IdempotencyJanitor: Service {
    let client: PostgresClient
    let interval: Duration
    let logger: Logger

    func run() async throws {
        // Graceful shutdown is not cancellation: without this the sleep would hold up shutdown.
        try? await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    var deleted = 0
                    repeat {
                        deleted = try await client.query("SELECT idempotency_expire(1000)", logger: logger)
                            .decode(Int.self).first(where: { _ in true }) ?? 0
                    } while deleted == 1000 && !Task.isCancelled
                } catch where !Task.isCancelled {
                    logger.warning("expired idempotency keys could not be deleted", metadata: ["error": "\(DatabaseURL.describe(error))"])
                }
                try await Task.sleep(for: interval)
            }
        }
    }
}
