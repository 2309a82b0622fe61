/// A plan's quota: `limit` requests per window of `period`, the windows aligned to the period
/// on the database clock (for an hour, the clock hour), each counted exactly from zero.
///
/// Chosen over a sliding window because what it reports is exact and simple to act on: the
/// count left in this window and the moment it is whole again, the same for every process, from
/// two integers per tenant. Its known cost, up to twice the quota around a window's edge, is
/// bounded by the burst limit that is checked beside it. Times are microseconds.
public struct QuotaWindow: Sendable, Equatable {
    public let limit: Int
    public let period: Int64

    public init(limit: Int, period: Int64) {
        precondition(limit > 0 && period > 0)
        self.limit = limit
        self.period = period
    }

    /// The start of the window `now` falls in (`quota_window_start` in Schema/0009).
    public func start(at now: Int64) -> Int64 {
        now - ((now % period) + period) % period
    }

    /// The end of the window that starts at `start`: when the quota is whole again.
    public func end(ofWindowAt start: Int64) -> Int64 {
        start + period
    }

    /// Requests left in a window that has counted `used`.
    public func remaining(used: Int) -> Int {
        max(0, limit - used)
    }
}
