import Domain

/// What each plan may spend, as two limits checked together:
/// - the quota: `limit` requests per window of `period` seconds, the windows aligned to the
///   period on the database clock (the clock hour, the UTC day), counted exactly;
/// - the burst limit: at most `burst` requests per `burstWindow` seconds (a token bucket, GCRA),
///   which keeps a flood from one tenant off the service however much quota it has left.
public struct RateLimits: Sendable, Equatable {
    public struct Quota: Sendable, Equatable, CustomStringConvertible {
        public let limit: Int
        /// Seconds.
        public let period: Int
        public let burst: Int
        /// Seconds.
        public let burstWindow: Int

        public init(limit: Int, period: Int, burst: Int, burstWindow: Int = 1) throws(RateLimitConfigurationError) {
            guard limit > 0 else { throw .init("the limit must be a positive number, not \(limit)") }
            guard period > 0 else { throw .init("the period must be a positive number of seconds, not \(period)") }
            guard burst > 0 else { throw .init("the burst must be a positive number, not \(burst)") }
            guard burstWindow > 0 else { throw .init("the burst window must be a positive number of seconds, not \(burstWindow)") }
            guard burstWindow <= period else {
                throw .init("the burst window (\(burstWindow) s) must not be longer than the quota's period (\(period) s)")
            }
            self.limit = limit
            self.period = period
            self.burst = burst
            self.burstWindow = burstWindow
        }

        /// The quota's window.
        public var window: QuotaWindow { QuotaWindow(limit: limit, period: Int64(period) * 1_000_000) }

        /// The burst limit: `burst` back to back, refilled at `burst` per `burstWindow`; the
        /// interval is rounded up, so that rounding never admits more than the limit.
        public var gcra: GCRA {
            let windowMicros = Int64(burstWindow) * 1_000_000
            return GCRA(emission: max(1, (windowMicros + Int64(burst) - 1) / Int64(burst)), burst: burst)
        }

        /// The quota's name in `RateLimit-Policy`, after its window.
        public var policyName: String {
            switch period {
            case 1: "second"
            case 60: "minute"
            case 3600: "hour"
            case 86_400: "day"
            default: "\(period)s"
            }
        }

        /// The burst limit's name in `RateLimit-Policy`.
        public static let burstPolicyName = "burst"

        public var description: String { "\(limit)/\(period)s+\(burst)/\(burstWindow)s" }
    }

    public private(set) var quotas: [Plan: Quota]

    public init(_ quotas: [Plan: Quota]) {
        self.quotas = quotas
    }

    public func quota(for plan: Plan) -> Quota {
        quotas[plan] ?? Self.defaults.quotas[plan]!
    }

    // The force-tries take constants that are valid.
    public static let defaults = RateLimits([
        .free: try! Quota(limit: 100, period: 3600, burst: 10),
        .basic: try! Quota(limit: 1_000, period: 3600, burst: 25),
        .premium: try! Quota(limit: 10_000, period: 3600, burst: 100),
        .enterprise: try! Quota(limit: 100_000, period: 3600, burst: 500),
    ])

    /// Applies overrides such as `free=100/h+10/s,enterprise=200000/h`: per plan a quota per
    /// window (`s`, `m`, `h`, `d` or a number of seconds) and optionally a burst limit, `+N/window`
    /// (`+N` alone is N per second); plans not named keep their quota, a burst not given keeps the
    /// plan's. All or nothing: one bad entry refuses the lot.
    public func overridden(by text: String) throws(RateLimitConfigurationError) -> RateLimits {
        let form = "plan=limit/period[+burst[/window]]"
        var result = self
        for entry in text.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !entry.isEmpty {
            let parts = entry.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2 else { throw .init("'\(entry)' is not \(form)") }
            guard let plan = Plan(rawValue: parts[0]) else {
                throw .init("'\(parts[0])' is not a plan; plans are \(Plan.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            let rateAndBurst = parts[1].split(separator: "+", omittingEmptySubsequences: false).map(String.init)
            let rate = rateAndBurst[0].split(separator: "/", omittingEmptySubsequences: false).map(String.init)
            guard rateAndBurst.count <= 2, rate.count == 2, let limit = Int(rate[0]) else { throw .init("'\(entry)' is not \(form)") }
            guard let period = Self.seconds(rate[1]) else { throw .init("'\(rate[1])' is not a period: use s, m, h, d or seconds") }
            let kept = quota(for: plan)
            var burst = kept.burst
            var burstWindow = kept.burstWindow
            if rateAndBurst.count == 2 {
                let burstParts = rateAndBurst[1].split(separator: "/", omittingEmptySubsequences: false).map(String.init)
                guard burstParts.count <= 2, let value = Int(burstParts[0]) else {
                    throw .init("'\(rateAndBurst[1])' is not a burst limit: use count or count/window, such as 10/s")
                }
                burst = value
                burstWindow = 1
                if burstParts.count == 2 {
                    guard let window = Self.seconds(burstParts[1]) else {
                        throw .init("'\(burstParts[1])' is not a burst window: use s, m, h, d or seconds")
                    }
                    burstWindow = window
                }
            }
            result.quotas[plan] = try Quota(limit: limit, period: period, burst: burst, burstWindow: burstWindow)
        }
        return result
    }

    static func seconds(_ text: String) -> Int? {
        switch text {
        case "s": 1
        case "m": 60
        case "h": 3600
        case "d": 86_400
        default: Int(text)
        }
    }
}

public struct RateLimitConfigurationError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = "rate limits: " + description }
}
