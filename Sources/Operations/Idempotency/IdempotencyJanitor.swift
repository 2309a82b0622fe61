import Database
import Logging
import PostgresNIO

/// Deletes expired idempotency keys in batches of 1 000, every `interval`. Lookups ignore
/// expired keys anyway; this only keeps the table from growing.
enum IdempotencyJanitor {
    static func service(client: PostgresClient, interval: Duration, logger: Logger) -> PeriodicService {
        PeriodicService(interval: interval, failure: "expired idempotency keys could not be deleted", logger: logger) {
            var deleted = 0
            repeat {
                deleted = try await client.query("SELECT idempotency_expire(1000)", logger: logger)
                    .decode(Int.self).first(where: { _ in true }) ?? 0
            } while deleted == 1000 && !Task.isCancelled
        }
    }
}
