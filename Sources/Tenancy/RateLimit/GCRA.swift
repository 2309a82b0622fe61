/// The generic cell rate algorithm, a plan's burst limit: a request costs one emission interval
/// `T` of a theoretical arrival time (TAT) that may run ahead of the clock by at most `burst × T`.
/// After an idle spell a client may send `burst` requests back to back; after that one per `T`.
/// Over any window `W` at most `burst + W / T` requests are admitted.
///
/// The shared store (`gcra_base`, `gcra_granted` in Schema/0006, used by `quota_take_many` in
/// Schema/0009) runs the same arithmetic on the database's clock; this copy computes the headers
/// and is the reference a test holds it to (through `RateLimitRow`). Times are microseconds.
public struct GCRA: Sendable, Equatable {
    public let emission: Int64
    public let burst: Int

    public init(emission: Int64, burst: Int) {
        precondition(emission > 0 && burst > 0)
        self.emission = emission
        self.burst = burst
    }

    public struct Decision: Sendable, Equatable {
        public let granted: Int
        public let tat: Int64
    }

    /// Grants up to `wanted` requests at `now` given the stored TAT (nil: never seen).
    public func take(_ wanted: Int, tat: Int64?, now: Int64) -> Decision {
        let base = base(tat: tat ?? now, counted: emission, now: now)
        let granted = granted(base: base, now: now, wanted: wanted)
        return Decision(granted: granted, tat: base + Int64(granted) * emission)
    }

    /// Where the next grant starts (`gcra_base`): the TAT, or now if that is later. A TAT counted
    /// in another interval (the plan changed) is re-priced: the requests outstanding carry over.
    public func base(tat: Int64, counted tatEmission: Int64, now: Int64) -> Int64 {
        guard tatEmission != emission, tat > now else { return max(tat, now) }
        // (tat - now) × emission / tatEmission, rounded half up as PostgreSQL's numeric → bigint.
        let (quotient, remainder) = tatEmission.dividingFullWidth((tat - now).multipliedFullWidth(by: emission))
        return now + quotient + (2 * remainder >= tatEmission ? 1 : 0)
    }

    /// How many of `wanted` fit from `base` (`gcra_granted`).
    public func granted(base: Int64, now: Int64, wanted: Int) -> Int {
        let room = (Int64(burst) * emission - (base - now)) / emission
        return Int(min(max(room, 0), Int64(wanted)))
    }

    /// Requests that would be admitted back to back right now.
    public func remaining(tat: Int64, now: Int64) -> Int {
        Int(max(0, (Int64(burst) * emission - max(0, tat - now)) / emission))
    }

    /// How long until one more request would be admitted (0 when one would be now).
    public func retryAfter(tat: Int64, now: Int64) -> Int64 {
        max(0, tat - now + emission - Int64(burst) * emission)
    }

    /// How long until the full burst is available again.
    public func reset(tat: Int64, now: Int64) -> Int64 {
        max(0, tat - now)
    }
}
