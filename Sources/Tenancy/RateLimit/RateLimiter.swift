import Database
import EventLog
import Foundation
import Logging
import PostgresNIO
import Synchronization

/// Enforces each tenant's plan quota with GCRA, its state kept in the database so that every
/// server process on it enforces one limit.
///
/// A process asks the database for one request at a time while a tenant sends few. When a tenant
/// sends several a second to this process, it takes up to two seconds' worth at once (at most a
/// quarter of the burst) and spends them locally; tokens it leased and did not spend within
/// `leaseLifetime` are dropped, never handed out twice. So the limit holds either way: only the
/// fairness between processes gets coarser, by at most two seconds of one tenant's traffic.
/// Takes that go to the database are batched (`RateLimitBatcher`).
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
        var quota: RateLimits.Quota
        var tokens: Int
        var tat: Int64
        var databaseNow: Int64
        var takenAt: ContinuousClock.Instant
        /// This process's recent demand for the tenant: requests since `windowStart`, and the
        /// rate (per second) of the last window.
        var windowStart: ContinuousClock.Instant
        var count: Int
        var rate: Double
    }

    let limits: RateLimits
    public let failureMode: FailureMode
    let leaseWindow: Int64 = 50_000
    let leaseLifetime: Duration = .seconds(2)
    let logger: Logger
    private let leases = Mutex<[TenantID: Lease]>([:])
    private let failing = Atomic<Bool>(false)
    private let batcher: RateLimitBatcher

    public init(client: PostgresClient, limits: RateLimits, failureMode: FailureMode = .open, logger: Logger) {
        self.batcher = RateLimitBatcher(client: client, logger: logger)
        self.limits = limits
        self.failureMode = failureMode
        self.logger = logger
    }

    public func quota(for tenant: TenantRecord) -> RateLimits.Quota { limits.quota(for: tenant.plan) }

    /// Statements sent to the store and the tenant takes they carried, since start.
    public var storeUsage: (statements: Int, takes: Int) {
        (batcher.statements.load(ordering: .relaxed), batcher.takes.load(ordering: .relaxed))
    }

    /// Spends one request of the tenant's quota, if there is one to spend.
    public func take(_ tenant: TenantRecord) async -> Outcome {
        let quota = limits.quota(for: tenant.plan)
        let gcra = quota.gcra
        let plan = tenant.plan.rawValue
        let now = ContinuousClock.now
        let (local, rate, unspent): (State?, Double, Int) = leases.withLock { leases in
            var lease = leases[tenant.id] ?? Lease(quota: quota, tokens: 0, tat: 0, databaseNow: 0, takenAt: now,
                                                   windowStart: now, count: 0, rate: 0)
            lease.count += 1
            // Short windows, so that demand after an idle spell is seen within a quarter second.
            if now - lease.windowStart >= .milliseconds(250) {
                lease.rate = Double(lease.count) / Double((now - lease.windowStart).microseconds) * 1_000_000
                lease.windowStart = now
                lease.count = 0
            }
            defer { leases[tenant.id] = lease }
            guard lease.quota == quota, lease.tokens > 0, now - lease.takenAt < leaseLifetime else {
                // An expired lease's tokens go back to the store with the next take, so that a
                // tenant's quota is not spent by tokens this process took and never used.
                let unspent = lease.quota == quota ? lease.tokens : 0
                lease.tokens = 0
                return (nil, lease.rate, unspent)
            }
            lease.tokens -= 1
            let local = state(plan, quota, gcra, tat: lease.tat, now: lease.databaseNow + (now - lease.takenAt).microseconds, spare: lease.tokens)
            return (local, lease.rate, 0)
        }
        if let local { return .allowed(local) }

        // Two seconds of this process's demand, or what a very large quota refills in `leaseWindow`.
        let demand = max(Int64(rate * 2), leaseWindow / gcra.emission)
        let wanted = Int(max(1, min(demand, Int64(max(1, quota.burst / 4)))))
        do {
            let (granted, tat, databaseNow) = try await batcher.take(
                .init(tenant: tenant.id.rawValue, wanted: Int32(wanted), emission: gcra.emission, burst: Int32(quota.burst),
                      returned: Int32(clamping: unspent)))
            if failing.exchange(false, ordering: .relaxed) { logger.notice("rate limit store reachable again") }
            if granted == 0 {
                let retry = Int((gcra.retryAfter(tat: tat, now: databaseNow) + 999_999) / 1_000_000)
                return .limited(state(plan, quota, gcra, tat: tat, now: databaseNow, spare: 0), retryAfter: max(1, retry))
            }
            let spare = Int(granted) - 1
            leases.withLock { leases in
                guard var lease = leases[tenant.id] else { return }
                // Takes for one tenant can overlap: add to what another left, never overwrite it.
                let live = lease.quota == quota && ContinuousClock.now - lease.takenAt < leaseLifetime
                lease.tokens = (live ? lease.tokens : 0) + spare
                lease.quota = quota
                lease.tat = tat
                lease.databaseNow = databaseNow
                lease.takenAt = now
                leases[tenant.id] = lease
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
