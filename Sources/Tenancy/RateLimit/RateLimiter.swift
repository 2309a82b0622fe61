import Database
import EventLog
import Foundation
import Logging
import PostgresNIO
import Synchronization

/// Enforces each tenant's plan limits, its quota per window and its burst limit, their state
/// kept in the database so that every server process on it enforces one limit.
///
/// A process asks the database for one request at a time while a tenant sends it few. When a
/// tenant sends it several a second, it takes up to two seconds' worth at once and spends them
/// locally (a lease): at most a quarter of the burst and at most 1% of what remained of the
/// quota. Leased requests count as spent in the database from the moment they are taken; those
/// not spent within `leaseLifetime`, or by the end of their quota window, are given back with the
/// next take or dropped, never handed out twice. So the limits hold either way; what a lease
/// changes is what other processes see (see `State.remaining`). Takes that go to the database
/// are batched (`RateLimitBatcher`).
///
/// A tenant this process last saw with room to spare in the current window (the same cap as a
/// lease) is admitted on credit when it holds no lease: answered at once and counted in the
/// database right after, in the background (`chargeCredit`), so that the thousands of tenants
/// that each send a request now and then do not wait for the database on every one. What credit
/// can pass the limits by is at most that cap per process, and only far from them.
public final class RateLimiter: Sendable {
    public enum FailureMode: String, Sendable, CaseIterable {
        /// Admit requests while the store cannot be reached (the default: the database being
        /// slow must not turn into an outage of its own).
        case open
        /// Refuse them with 503.
        case closed
    }

    /// Which of a plan's limits refused a request.
    public enum Policy: Sendable, Equatable {
        /// The quota of the current window is spent: wait for the window's end.
        case quota
        /// Too many requests too quickly: wait a moment.
        case burst
    }

    public enum Outcome: Sendable, Equatable {
        case allowed(State)
        case limited(State, policy: Policy, retryAfter: Int)
        /// The store could not be asked; `admitted` follows the failure mode.
        case unavailable(admitted: Bool, RateLimits.Quota, plan: String)
    }

    /// What the headers report.
    public struct State: Sendable, Equatable {
        public let plan: String
        public let quota: RateLimits.Quota
        /// Requests left in the current quota window. Exact (the database's count after this
        /// request) while the tenant holds no lease; a process serving from a lease counts its
        /// own requests exactly, but sees what other processes spent only when it next asks the
        /// database, within `leaseLifetime` (2 s), and counts their unspent leases as spent.
        public let remaining: Int
        /// Seconds until the quota window ends, and that moment as a Unix time.
        public let reset: Int
        public let resetAt: Int
        /// Requests the burst limit would admit back to back now, and seconds until all of them
        /// are back.
        public let burstRemaining: Int
        public let burstReset: Int
    }

    struct Lease {
        var quota: RateLimits.Quota
        var tokens: Int
        /// The quota window the tokens were taken in, its count then, and the burst's TAT then.
        var window: Int64
        var used: Int
        var tat: Int64
        var databaseNow: Int64
        var takenAt: ContinuousClock.Instant
        /// This process's recent demand for the tenant: requests since `windowStart`, and the
        /// rate (per second) of the last window.
        var windowStart: ContinuousClock.Instant
        var count: Int
        var rate: Double
        /// Requests admitted on credit and not yet counted in the database, and whether a charge
        /// for them is under way.
        var credit = 0
        var charging = false

        /// Takes for one tenant can overlap: adds the `spare` requests a take granted to what
        /// another left, never overwriting it, and keeps the later of two counts by the
        /// database's clock (the larger at the same instant). Not the larger alone: a take that
        /// gave back an expired lease's unspent requests lowers the count, and keeping the older
        /// one left the lease expired, so that every request went to the database. Requests left
        /// from an earlier window are dropped: they were counted there.
        mutating func merge(_ result: RateLimitBatcher.Result, spare: Int, quota: RateLimits.Quota, at now: ContinuousClock.Instant) {
            let live = self.quota == quota && window == result.window
            tokens = (live ? tokens : 0) + spare
            if !live || result.now > databaseNow || (result.now == databaseNow && Int(result.used) >= used) {
                used = Int(result.used)
                tat = result.tat
                databaseNow = result.now
                takenAt = now
            }
            self.quota = quota
            window = result.window
        }
    }

    let limits: RateLimits
    public let failureMode: FailureMode
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

    /// Spends one request of the tenant's quota and burst limit, if both have one to spend.
    public func take(_ tenant: TenantRecord) async -> Outcome {
        let quota = limits.quota(for: tenant.plan)
        let window = quota.window
        let gcra = quota.gcra
        let plan = tenant.plan.rawValue
        let now = ContinuousClock.now
        let (local, wanted, unspent, charge): (State?, Int, (tokens: Int, window: Int64), Bool) = leases.withLock { leases in
            var lease = leases[tenant.id] ?? Lease(quota: quota, tokens: 0, window: 0, used: quota.limit, tat: 0, databaseNow: 0,
                                                   takenAt: now, windowStart: now, count: 0, rate: 0)
            lease.count += 1
            // Short windows, so that demand after an idle spell is seen within a quarter second.
            if now - lease.windowStart >= .milliseconds(250) {
                lease.rate = Double(lease.count) / Double((now - lease.windowStart).microseconds) * 1_000_000
                lease.windowStart = now
                lease.count = 0
            }
            defer { leases[tenant.id] = lease }
            let databaseNow = lease.databaseNow + (now - lease.takenAt).microseconds
            guard lease.quota == quota, lease.tokens > 0, now - lease.takenAt < leaseLifetime,
                  databaseNow < window.end(ofWindowAt: lease.window) else {
                // An expired lease's tokens go back to the store with the next take, so that a
                // tenant's limits are not spent by requests this process took and never used.
                let unspent = lease.quota == quota ? (lease.tokens, lease.window) : (0, 0)
                lease.tokens = 0
                // Two seconds of this process's demand, within a quarter of the burst and 1% of
                // what remained of the quota when last asked (nothing known: one).
                let cap = min(quota.burst / 4, window.remaining(used: lease.quota == quota ? lease.used : quota.limit) / 100)
                let wanted = Int(max(1, min(Int64(lease.rate * 2), Int64(cap))))
                // On credit: a tenant with room to spare by this process's last count in this
                // window (1% of what remained, a quarter of the burst) is admitted at once and
                // counted in the database right after, in the background. Without it, a tenant
                // seen once every few seconds (one of many thousands) waits for the database on
                // nearly every request. Not when failing closed: that must ask the database first.
                if failureMode == .open, lease.quota == quota, lease.credit < cap, databaseNow < window.end(ofWindowAt: lease.window),
                   gcra.remaining(tat: lease.tat, now: databaseNow) > lease.credit {
                    lease.credit += 1
                    let start = !lease.charging
                    lease.charging = true
                    let local = state(plan, quota, window: lease.window, used: lease.used + lease.credit, tat: lease.tat + Int64(lease.credit) * gcra.emission,
                                      now: databaseNow, spare: 0)
                    return (local, wanted, unspent, start)
                }
                return (nil, wanted, unspent, false)
            }
            lease.tokens -= 1
            let local = state(plan, quota, window: lease.window, used: lease.used - lease.tokens + lease.credit, tat: lease.tat, now: databaseNow,
                              spare: lease.tokens)
            return (local, 0, (0, 0), false)
        }
        if let local {
            if charge { Task { await self.chargeCredit(tenant.id, quota: quota, prefetch: wanted - 1, unspent: unspent) } }
            // Returned with the charge that is under way, or kept for the next take.
            else if unspent.tokens > 0 { giveBack(unspent, tenant: tenant.id, quota: quota) }
            return .allowed(local)
        }

        do {
            let result = try await batcher.take(
                .init(tenant: tenant.id.rawValue, wanted: Int32(clamping: wanted), quota: Int32(clamping: quota.limit), period: window.period,
                      emission: gcra.emission, burst: Int32(clamping: quota.burst),
                      returned: Int32(clamping: unspent.tokens), returnedWindow: unspent.window))
            if failing.exchange(false, ordering: .relaxed) { logger.notice("rate limit store reachable again") }
            let used = Int(result.used)
            if result.granted == 0 {
                let refused = state(plan, quota, window: result.window, used: used, tat: result.tat, now: result.now, spare: 0)
                if window.remaining(used: used) == 0 {
                    return .limited(refused, policy: .quota, retryAfter: max(1, refused.reset))
                }
                let retry = Int((gcra.retryAfter(tat: result.tat, now: result.now) + 999_999) / 1_000_000)
                return .limited(refused, policy: .burst, retryAfter: max(1, retry))
            }
            let spare = Int(result.granted) - 1
            let merged = leases.withLock { leases -> (used: Int, tat: Int64, spare: Int) in
                guard var lease = leases[tenant.id] else { return (used, result.tat, spare) }
                lease.merge(result, spare: spare, quota: quota, at: now)
                leases[tenant.id] = lease
                // With nothing held, this request's own count is the exact one.
                return lease.tokens == 0 ? (used, result.tat, 0) : (lease.used, lease.tat, lease.tokens)
            }
            return .allowed(state(plan, quota, window: result.window, used: merged.used - merged.spare, tat: merged.tat, now: result.now,
                                  spare: merged.spare))
        } catch {
            // The expired lease's tokens never reached the store: put them back (the lease stays
            // expired, so none is spent locally) for the next take to give back; dropped, this
            // process would have spent them without using them.
            if unspent.tokens > 0 { giveBack(unspent, tenant: tenant.id, quota: quota) }
            storeFailed(error)
            return .unavailable(admitted: failureMode == .open, quota, plan: plan)
        }
    }

    /// Counts the requests admitted on credit for `tenant` in the database (and takes `prefetch`
    /// more as a lease, and gives back `unspent`), until none is left uncounted. One charge per
    /// tenant at a time; requests admitted meanwhile wait for the next round.
    private func chargeCredit(_ tenant: TenantID, quota: RateLimits.Quota, prefetch: Int, unspent: (tokens: Int, window: Int64)) async {
        var unspent = unspent
        var prefetch = max(0, prefetch)
        while true {
            let credit = leases.withLock { leases -> Int in
                guard var lease = leases[tenant], lease.credit > 0 else {
                    leases[tenant]?.charging = false
                    return 0
                }
                let credit = lease.credit
                lease.credit = 0
                leases[tenant] = lease
                return credit
            }
            guard credit > 0 else {
                if unspent.tokens > 0 { giveBack(unspent, tenant: tenant, quota: quota) }
                return
            }
            let gcra = quota.gcra
            do {
                let result = try await batcher.take(
                    .init(tenant: tenant.rawValue, wanted: Int32(clamping: credit + prefetch), quota: Int32(clamping: quota.limit),
                          period: quota.window.period, emission: gcra.emission, burst: Int32(clamping: quota.burst),
                          returned: Int32(clamping: unspent.tokens), returnedWindow: unspent.window))
                let spare = max(0, Int(result.granted) - credit)
                if Int(result.granted) < credit {
                    // Admitted on credit past what the limits had left: at most the credit's cap.
                    logger.debug("requests admitted on credit past the limit", metadata: ["tenant": "\(tenant)", "over": "\(credit - Int(result.granted))"])
                }
                leases.withLock { leases in leases[tenant]?.merge(result, spare: spare, quota: quota, at: .now) }
                if failing.exchange(false, ordering: .relaxed) { logger.notice("rate limit store reachable again") }
            } catch {
                // Kept for the next charge: the requests stay admitted (failing open), and counted
                // once the store answers again.
                leases.withLock { leases in
                    leases[tenant]?.credit += credit
                    leases[tenant]?.charging = false
                }
                if unspent.tokens > 0 { giveBack(unspent, tenant: tenant, quota: quota) }
                storeFailed(error)
                return
            }
            unspent = (0, 0)
            prefetch = 0
        }
    }

    /// Logged when the store starts failing, not once per request.
    private func storeFailed(_ error: any Error) {
        if !failing.exchange(true, ordering: .relaxed) {
            logger.error("rate limit store unavailable; failing \(failureMode.rawValue)", metadata: ["error": "\(DatabaseURL.describe(error))"])
        }
    }

    /// Expired lease tokens that did not reach the store: kept for the next take to give back.
    private func giveBack(_ unspent: (tokens: Int, window: Int64), tenant: TenantID, quota: RateLimits.Quota) {
        leases.withLock { leases in
            guard var lease = leases[tenant], lease.quota == quota, lease.window == unspent.window else { return }
            lease.tokens += unspent.tokens
            leases[tenant] = lease
        }
    }

    /// Counts in the store every request admitted on credit and not yet counted, and waits for
    /// the charges under way (at most `timeout`): at shutdown, before the pools close, so that a
    /// stopping server leaves no admitted request uncounted.
    public func settle(timeout: Duration = .seconds(2)) async {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let (due, busy) = leases.withLock { leases -> ([(TenantID, RateLimits.Quota)], Bool) in
                var due: [(TenantID, RateLimits.Quota)] = []
                var busy = false
                for (tenant, lease) in leases where lease.credit > 0 || lease.charging {
                    if lease.charging { busy = true; continue }
                    leases[tenant]?.charging = true
                    due.append((tenant, lease.quota))
                }
                return (due, busy)
            }
            if due.isEmpty && !busy { return }
            await withTaskGroup(of: Void.self) { group in
                for (tenant, quota) in due { group.addTask { await self.chargeCredit(tenant, quota: quota, prefetch: 0, unspent: (0, 0)) } }
            }
            if busy { try? await Task.sleep(for: .milliseconds(10)) }
        }
    }

    /// The headers' figures for a window that has counted `used` (leased requests held by this
    /// process, `spare`, not among them) and a burst TAT, at the database's time `now`.
    private func state(_ plan: String, _ quota: RateLimits.Quota, window start: Int64, used: Int, tat: Int64, now: Int64, spare: Int) -> State {
        let window = quota.window
        let gcra = quota.gcra
        let end = window.end(ofWindowAt: start)
        let reset = Int((max(0, end - now) + 999_999) / 1_000_000)
        return State(plan: plan, quota: quota, remaining: window.remaining(used: used), reset: reset,
                     resetAt: Int((end + 999_999) / 1_000_000),
                     burstRemaining: min(quota.burst, gcra.remaining(tat: tat, now: now) + spare),
                     // The interval is rounded up, so an empty bucket is full a few microseconds
                     // after its window; reported as the window, not the next whole second.
                     burstReset: min(quota.burstWindow, Int((gcra.reset(tat: tat, now: now) + 999_999) / 1_000_000)))
    }
}

struct RateLimitStoreError: Error {}

extension Duration {
    var microseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000 + attoseconds / 1_000_000_000_000
    }
}
