import Database
import EventLog
import Foundation
import Logging
import PostgresNIO
import Synchronization

/// Enforces each tenant's plan quota with GCRA, its state kept in the database so that every
/// server process on it enforces one limit.
///
/// A process asks the database for one request at a time while the quota is small (every plan's
/// is: an enterprise tenant's 100 000/h is one request per 36 ms). When a quota is so large that
/// several requests fall within `leaseWindow`, it takes a few at once and spends them locally;
/// tokens it leased and did not spend within `leaseLifetime` are dropped, never handed out twice,
/// so the limit holds either way and only the fairness between processes gets coarser.
public final class RateLimiter: Sendable {
    public enum FailureMode: String, Sendable, CaseIterable {
        /// Admit requests while the store cannot be reached (the default: the database being
        /// slow must not turn into an outage of its own).
        case open
        /// Refuse them with 503.
        case closed
    }

    public enum Outcome: Sendable, Equatable {
        case allowed(State)
        case limited(State, retryAfter: Int)
        /// The store could not be asked; `admitted` follows the failure mode.
        case unavailable(admitted: Bool, RateLimits.Quota, plan: String)
    }

    /// What the headers report.
    public struct State: Sendable, Equatable {
        public let plan: String
        public let quota: RateLimits.Quota
        public let remaining: Int
        /// Seconds until the full burst is available again.
        public let reset: Int
        /// The same moment as a Unix time.
        public let resetAt: Int
    }

    struct Lease {
        let quota: RateLimits.Quota
        var tokens: Int
        let tat: Int64
        let databaseNow: Int64
        let takenAt: ContinuousClock.Instant
    }

    let client: PostgresClient
    let limits: RateLimits
    public let failureMode: FailureMode
    let leaseWindow: Int64 = 50_000
    let leaseLifetime: Duration = .seconds(1)
    let logger: Logger
    private let leases = Mutex<[TenantID: Lease]>([:])
    private let failing = Atomic<Bool>(false)

    public init(client: PostgresClient, limits: RateLimits, failureMode: FailureMode = .open, logger: Logger) {
        self.client = client
        self.limits = limits
        self.failureMode = failureMode
        self.logger = logger
    }

    public func quota(for tenant: TenantRecord) -> RateLimits.Quota { limits.quota(for: tenant.plan) }

    /// Spends one request of the tenant's quota, if there is one to spend.
    public func take(_ tenant: TenantRecord) async -> Outcome {
        let quota = limits.quota(for: tenant.plan)
        let gcra = quota.gcra
        let plan = tenant.plan.rawValue
        let now = ContinuousClock.now
        let local: State? = leases.withLock { leases in
            guard var lease = leases[tenant.id], lease.quota == quota, lease.tokens > 0, now - lease.takenAt < leaseLifetime else {
                return nil
            }
            lease.tokens -= 1
            leases[tenant.id] = lease
            return state(plan, quota, gcra, tat: lease.tat, now: lease.databaseNow + (now - lease.takenAt).microseconds, spare: lease.tokens)
        }
        if let local { return .allowed(local) }

        let wanted = Int(max(1, min(leaseWindow / gcra.emission, Int64(max(1, quota.burst / 4)))))
        do {
            let rows = try await client.query(
                "SELECT granted, tat_us, now_us FROM rate_limit_take(\(tenant.id.rawValue), \(Int32(wanted)), \(gcra.emission), \(Int32(quota.burst)))",
                logger: logger)
            var result: (Int32, Int64, Int64)?
            for try await row in rows.decode((Int32, Int64, Int64).self) { result = row }
            guard let (granted, tat, databaseNow) = result else { throw RateLimitStoreError() }
            if failing.exchange(false, ordering: .relaxed) { logger.notice("rate limit store reachable again") }
            if granted == 0 {
                let retry = Int((gcra.retryAfter(tat: tat, now: databaseNow) + 999_999) / 1_000_000)
                return .limited(state(plan, quota, gcra, tat: tat, now: databaseNow, spare: 0), retryAfter: max(1, retry))
            }
            let spare = Int(granted) - 1
            if spare > 0 || wanted > 1 {
                leases.withLock { $0[tenant.id] = Lease(quota: quota, tokens: spare, tat: tat, databaseNow: databaseNow, takenAt: now) }
            }
            return .allowed(state(plan, quota, gcra, tat: tat, now: databaseNow, spare: spare))
        } catch {
            // Logged when the store starts failing, not once per request.
            if !failing.exchange(true, ordering: .relaxed) {
                logger.error("rate limit store unavailable; failing \(failureMode.rawValue)",
                             metadata: ["error": "\(DatabaseURL.describe(error))"])
            }
            return .unavailable(admitted: failureMode == .open, quota, plan: plan)
        }
    }

    private func state(_ plan: String, _ quota: RateLimits.Quota, _ gcra: GCRA, tat: Int64, now: Int64, spare: Int) -> State {
        let reset = Int((gcra.reset(tat: tat, now: now) + 999_999) / 1_000_000)
        return State(plan: plan, quota: quota, remaining: min(quota.burst, gcra.remaining(tat: tat, now: now) + spare), reset: reset,
                     resetAt: Int((now + 999_999) / 1_000_000) + reset)
    }
}

struct RateLimitStoreError: Error {}

extension Duration {
    var microseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000 + attoseconds / 1_000_000_000_000
    }
}
