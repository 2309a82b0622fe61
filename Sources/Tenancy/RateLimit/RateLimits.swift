import Domain

/// What each plan may spend: `limit` requests per `period`, of which `burst` may come back to back.
public struct RateLimits: Sendable, Equatable {
    public struct Quota: Sendable, Equatable, CustomStringConvertible {
        public let limit: Int
        /// Seconds.
        public let period: Int
        public let burst: Int

        public init(limit: Int, period: Int, burst: Int) throws(RateLimitConfigurationError) {
            guard limit > 0 else { throw .init("the limit must be a positive number, not \(limit)") }
            guard period > 0 else { throw .init("the period must be a positive number of seconds, not \(period)") }
            guard burst > 0 else { throw .init("the burst must be a positive number, not \(burst)") }
            self.limit = limit
            self.period = period
            self.burst = burst
        }

        /// Rounded up, so that rounding never admits more than the limit.
        public var gcra: GCRA {
            let periodMicros = Int64(period) * 1_000_000
            return GCRA(emission: max(1, (periodMicros + Int64(limit) - 1) / Int64(limit)), burst: burst)
        }

        public var description: String { "\(limit)/\(period)s+\(burst)" }
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
        .basic: try! Quota(limit: 1_000, period: 3600, burst: 20),
        .premium: try! Quota(limit: 10_000, period: 3600, burst: 50),
        .enterprise: try! Quota(limit: 100_000, period: 3600, burst: 200),
    ])

    /// Applies overrides such as `free=100/h+10,enterprise=200000/h`: per plan a limit, a period
    /// (`s`, `m`, `h`, `d` or a number of seconds) and optionally a burst; plans not named keep
    /// their quota, a burst not given keeps the plan's. All or nothing: one bad entry refuses the lot.
    public func overridden(by text: String) throws(RateLimitConfigurationError) -> RateLimits {
        var result = self
        for entry in text.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !entry.isEmpty {
            let parts = entry.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2 else { throw .init("'\(entry)' is not plan=limit/period[+burst]") }
            guard let plan = Plan(rawValue: parts[0]) else {
                throw .init("'\(parts[0])' is not a plan; plans are \(Plan.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            let rateAndBurst = parts[1].split(separator: "+", omittingEmptySubsequences: false).map(String.init)
            let rate = rateAndBurst[0].split(separator: "/", omittingEmptySubsequences: false).map(String.init)
            guard rateAndBurst.count <= 2, rate.count == 2, let limit = Int(rate[0]) else {
                throw .init("'\(entry)' is not plan=limit/period[+burst]")
            }
            guard let period = Self.seconds(rate[1]) else { throw .init("'\(rate[1])' is not a period: use s, m, h, d or seconds") }
            let burst: Int
            if rateAndBurst.count == 2 {
                guard let value = Int(rateAndBurst[1]) else { throw .init("'\(rateAndBurst[1])' is not a burst size") }
                burst = value
            } else {
                burst = quota(for: plan).burst
            }
            result.quotas[plan] = try Quota(limit: limit, period: period, burst: burst)
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
