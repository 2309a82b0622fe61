import Database
import Logging
import ServiceLifecycle

/// Runs `work` now and then every `interval` until shutdown; a failed round is logged and the
/// next one tries again.
struct PeriodicService: Service {
    let interval: Duration
    /// What the log says when a round fails.
    let failure: Logger.Message
    let logger: Logger
    let work: @Sendable () async throws -> Void

    func run() async throws {
        // Graceful shutdown is not cancellation: without this the sleep would hold up shutdown.
        try? await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    try await work()
                } catch where !Task.isCancelled {
                    logger.warning(failure, metadata: ["error": "\(DatabaseURL.describe(error))"])
                }
                try await Task.sleep(for: interval)
            }
        }
    }
}
