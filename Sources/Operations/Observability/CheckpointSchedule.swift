import EventLog
import Logging

/// Signs a checkpoint for every tenant whose log grew, every `interval`.
enum CheckpointSchedule {
    static func service(store: EventStore, signer: CheckpointSigner, interval: Duration, logger: Logger) -> PeriodicService {
        PeriodicService(interval: interval, failure: "checkpoints could not be signed", logger: logger) {
            for tenant in try await store.checkpointsDue() {
                _ = try await store.checkpoint(tenant: tenant, signer: signer)
            }
        }
    }
}
