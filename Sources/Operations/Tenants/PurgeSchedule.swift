import Database
import Foundation
import Logging
import PostgresNIO

/// Purges, every `interval`, the offboarding tenants whose retention has passed. A tenant that
/// fails is logged and tried again next round; the others go on.
enum PurgeSchedule {
    static func service(purge: TenantPurge, client: PostgresClient, interval: Duration, logger: Logger) -> PeriodicService {
        PeriodicService(interval: interval, failure: "offboarded tenants could not be listed for purging", logger: logger) {
            _ = try await purgeDue(purge: purge, client: client, logger: logger)
        }
    }

    /// One round: the slugs purged.
    static func purgeDue(purge: TenantPurge, client: PostgresClient, logger: Logger) async throws -> [String] {
        let due = try await client.query(
            "SELECT slug FROM tenants WHERE status = 'offboarding' AND removal_scheduled_at <= now() ORDER BY removal_scheduled_at",
            logger: logger
        ).decode(String.self).all()
        var purged: [String] = []
        for slug in due {
            do {
                if case .purged = try await purge.purge(slug: slug, early: false) { purged.append(slug) }
            } catch {
                logger.error("an offboarded tenant could not be purged", metadata: ["slug": "\(slug)", "error": "\(DatabaseURL.describe(error))"])
            }
        }
        return purged
    }
}
