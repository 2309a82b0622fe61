/// The generic cell rate algorithm: a request costs one emission interval `T` of a theoretical
/// arrival time (TAT) that may run ahead of the clock by at most `burst × T`. After an idle
/// spell a client may send `burst` requests back to back; after that one per `T`. Over any
/// window `W` at most `burst + W / T` requests are admitted, which is the guarantee we state.
///
/// The shared store (`rate_limit_take` in Schema/0006) runs the same arithmetic on the
/// database's clock; this copy computes the headers and is the reference a test holds it to.
/// Times are microseconds.
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
        let base = max(tat ?? now, now)
        let room = (Int64(burst) * emission - (base - now)) / emission
        let granted = Int(min(max(room, 0), Int64(wanted)))
        return Decision(granted: granted, tat: base + Int64(granted) * emission)
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
