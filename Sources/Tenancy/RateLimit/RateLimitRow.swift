/// One tenant's row of `rate_limits` and the step `quota_take_many` (Schema/0009) applies to it:
/// a plan's quota window and burst limit decided together. The database runs this on its own
/// clock for every process; this copy is the reference a test holds the SQL to, step for step.
/// Times are microseconds.
public struct RateLimitRow: Sendable, Equatable {
    /// Start and length of the window `used` counts in.
    public var window: Int64
    public var period: Int64
    public var used: Int
    /// The burst limit's theoretical arrival time and the interval it was counted in.
    public var tat: Int64
    public var emission: Int64

    public init(window: Int64, period: Int64, used: Int, tat: Int64, emission: Int64) {
        self.window = window
        self.period = period
        self.used = used
        self.tat = tat
        self.emission = emission
    }

    public struct Decision: Sendable, Equatable {
        public let granted: Int
        public let row: RateLimitRow
    }

    /// Grants up to `wanted` requests at `now` under both limits, to a row never seen when nil.
    /// `returned` requests, leased in the window starting at `returnedWindow` and not spent,
    /// go back to the burst's TAT, and to the count only while that window lasts.
    public static func take(
        _ wanted: Int, row: RateLimitRow?, quota: QuotaWindow, burst: GCRA, now: Int64, returned: Int = 0, returnedWindow: Int64? = nil
    ) -> Decision {
        let window = quota.start(at: now)
        let stored = row ?? RateLimitRow(window: window, period: quota.period, used: 0, tat: 0, emission: burst.emission)
        let back = max(returned, 0)
        var spent = stored.window == window && stored.period == quota.period ? stored.used : 0
        if back > 0 && returnedWindow == window { spent = max(spent - back, 0) }
        let base = burst.base(tat: stored.tat - (stored.emission == burst.emission ? Int64(back) * burst.emission : 0),
                              counted: stored.emission, now: now)
        let granted = min(burst.granted(base: base, now: now, wanted: wanted), quota.remaining(used: spent))
        return Decision(granted: granted, row: RateLimitRow(window: window, period: quota.period, used: spent + granted,
                                                            tat: base + Int64(granted) * burst.emission, emission: burst.emission))
    }
}
