import Database
import EventLog
import Foundation
import Logging
import PostgresNIO
import ServiceLifecycle
import Synchronization

/// Counts the requests refused for a tenant's quota, for the platform's analytics.
///
/// A refusal only adds to an in-memory count per (tenant, UTC day), so a flood of 429s costs
/// no round trip each; every `interval` the counts are added to `rate_limited_requests` in one
/// statement.
public final class RateLimitLedger: FlushingService, Sendable {
    struct Key: Hashable {
        let tenant: UUID
        /// Days since 1970: a division per refusal, the text only when written.
        let day: Int64
    }

    let client: PostgresClient
    public let interval: Duration
    public let flushes = FlushQueue()
    public let logger: Logger
    private let pending = Mutex<[Key: Int64]>([:])

    public init(client: PostgresClient, interval: Duration = .seconds(1), logger: Logger) {
        self.client = client
        self.interval = interval
        self.logger = logger
    }

    /// Refusals counted and not yet written.
    public var pendingRefusals: Int64 {
        pending.withLock { $0.values.reduce(0, +) }
    }

    public func record(_ tenant: TenantID, at date: Date = Date()) {
        let key = Key(tenant: tenant.rawValue, day: Timestamps.dayNumber(of: date))
        pending.withLock { $0[key, default: 0] += 1 }
    }

    /// Writes everything counted so far; on failure the counts wait for the next call.
    public func writePending() async {
        let batch = pending.withLock { pending in
            let taken = pending
            pending.removeAll()
            return taken
        }
        guard !batch.isEmpty else { return }
        let entries = batch.sorted { ($0.key.tenant.uuidString, $0.key.day) < ($1.key.tenant.uuidString, $1.key.day) }
        do {
            try await client.query("""
                SELECT rate_limited_add(\(entries.map(\.key.tenant))::uuid[], \(entries.map { Timestamps.dayText($0.key.day) })::date[], \(entries.map(\.value))::bigint[])
                """, logger: logger).consume()
        } catch {
            logger.warning("rate-limited counts not written yet; will retry", metadata: ["error": "\(DatabaseURL.describe(error))"])
            pending.withLock { pending in
                for (key, count) in batch { pending[key, default: 0] += count }
            }
        }
    }
}
