import Synchronization

/// Tenant reads let into each PostgreSQL server a few at a time, first come, first served.
///
/// A read is CPU on both sides and little else. Sixteen of them at once on a two-core machine
/// are time-sliced by the kernel among the server's threads, the backends and everything else,
/// and a few are preempted in the middle of their statement: the median stays at a few
/// milliseconds while the 99th percentile grows to hundreds (bench/RESULTS.md). Queued here
/// instead, they run `capacity` at a time and end in the order they came.
///
/// A read still running `overtime` after it was let in stops counting against the server: it
/// is waiting (for a lock, or on a slow or stalled server), not using the CPU the gate shares
/// out, and must not hold back the reads behind it; one tenant's stalled reads thus cost the
/// others at most `overtime`. The same rule lets a read that opens another read in its body
/// through, however many of them there are. A read that waits longer than `wait` to be let in
/// fails with `DatabaseError.busy` (a 503, nothing done).
public final class ReadGate: Sendable {
    public struct Limits: Sendable {
        /// Reads running at once against one server.
        public var capacity: Int
        public var overtime: Duration
        public var wait: Duration

        public init(capacity: Int, overtime: Duration = .milliseconds(50), wait: Duration = .seconds(2)) {
            self.capacity = max(1, capacity)
            self.overtime = overtime
            self.wait = wait
        }
    }

    /// A read let in, to hand back to `leave`.
    public struct Ticket: Sendable {
        let server: String
        let id: UInt64
    }

    private struct Waiter {
        let id: UInt64
        let continuation: CheckedContinuation<Void, any Error>
    }

    private struct Server {
        /// Reads let in and still counted, with when they were let in (oldest first).
        var running: [(id: UInt64, since: ContinuousClock.Instant)] = []
        var waiters: [(waiter: Waiter, until: ContinuousClock.Instant)] = []
        /// When the timer of this server wakes next, if it is set.
        var timer: ContinuousClock.Instant?
    }

    private struct State {
        var servers: [String: Server] = [:]
        var next: UInt64 = 0
        var overtimeReads = 0
    }

    public let limits: Limits
    private let state = Mutex(State())

    public init(_ limits: Limits) {
        self.limits = limits
    }

    /// Runs `body` once a read on `server` is let in.
    public func admitted<Result>(
        on server: String, isolation: isolated (any Actor)? = #isolation, _ body: () async throws -> sending Result
    ) async throws -> sending Result {
        let ticket = try await enter(server)
        defer { leave(ticket) }
        return try await body()
    }

    /// Reads that ran past `overtime` so far (they stopped counting).
    public var overtimeReads: Int { state.withLock { $0.overtimeReads } }

    /// Reads counted and waiting on `server` now.
    public func load(on server: String) -> (running: Int, waiting: Int) {
        state.withLock { state in
            let entry = state.servers[server]
            return (entry?.running.count ?? 0, entry?.waiters.count ?? 0)
        }
    }

    public func enter(_ server: String) async throws -> Ticket {
        let now = ContinuousClock.now
        let id: UInt64? = state.withLock { state in
            state.next += 1
            var entry = state.servers[server, default: Server()]
            state.overtimeReads += retire(&entry, now: now)
            defer { state.servers[server] = entry }
            guard entry.waiters.isEmpty, entry.running.count < limits.capacity else { return nil }
            entry.running.append((state.next, now))
            return state.next
        }
        if let id { return Ticket(server: server, id: id) }
        let waiting = state.withLock { state in
            state.next += 1
            return state.next
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let (admitted, timer) = state.withLock { state -> ([Waiter], ContinuousClock.Instant?) in
                    var entry = state.servers[server, default: Server()]
                    entry.waiters.append((Waiter(id: waiting, continuation: continuation), now + limits.wait))
                    state.overtimeReads += retire(&entry, now: .now)
                    let admitted = admit(&entry, now: .now)
                    let timer = schedule(&entry)
                    state.servers[server] = entry
                    return (admitted, timer)
                }
                for waiter in admitted { waiter.continuation.resume() }
                if let timer { wake(server, at: timer) }
                // Cancelled before the waiter was queued: the handler found nothing to abandon.
                if Task.isCancelled { abandon(waiting, on: server, with: CancellationError()) }
            }
        } onCancel: {
            abandon(waiting, on: server, with: CancellationError())
        }
        return Ticket(server: server, id: waiting)
    }

    public func leave(_ ticket: Ticket) {
        let admitted = state.withLock { state -> [Waiter] in
            guard var entry = state.servers[ticket.server] else { return [] }
            // A read that ran into overtime was already taken off the count.
            guard let index = entry.running.firstIndex(where: { $0.id == ticket.id }) else { return [] }
            entry.running.remove(at: index)
            let admitted = admit(&entry, now: .now)
            state.servers[ticket.server] = entry.running.isEmpty && entry.waiters.isEmpty && entry.timer == nil ? nil : entry
            return admitted
        }
        for waiter in admitted { waiter.continuation.resume() }
    }

    /// Takes reads past their overtime off the count; how many.
    private func retire(_ entry: inout Server, now: ContinuousClock.Instant) -> Int {
        let before = entry.running.count
        entry.running.removeAll { now - $0.since >= limits.overtime }
        return before - entry.running.count
    }

    /// Lets waiters in, in the order they came, while there is room.
    private func admit(_ entry: inout Server, now: ContinuousClock.Instant) -> [Waiter] {
        var admitted: [Waiter] = []
        while entry.running.count < limits.capacity, !entry.waiters.isEmpty {
            let waiter = entry.waiters.removeFirst().waiter
            entry.running.append((waiter.id, now))
            admitted.append(waiter)
        }
        return admitted
    }

    /// When the server's timer must wake next (the first read to run into overtime, or the
    /// first waiter's deadline) if it is not set to wake by then already; nil when no one waits.
    private func schedule(_ entry: inout Server) -> ContinuousClock.Instant? {
        guard let deadline = entry.waiters.first?.until else { return nil }
        let due = min(deadline, (entry.running.first?.since).map { $0 + limits.overtime } ?? deadline)
        if let set = entry.timer, set <= due { return nil }
        entry.timer = due
        return due
    }

    private func wake(_ server: String, at instant: ContinuousClock.Instant) {
        Task { [weak self] in
            try? await Task.sleep(until: instant, clock: .continuous)
            self?.tick(server, set: instant)
        }
    }

    private func tick(_ server: String, set: ContinuousClock.Instant) {
        let now = ContinuousClock.now
        let (admitted, expired, timer) = state.withLock { state -> ([Waiter], [Waiter], ContinuousClock.Instant?) in
            guard var entry = state.servers[server] else { return ([], [], nil) }
            // A timer set later replaced this one's duty; the earlier one still fires and is let go.
            if entry.timer == set { entry.timer = nil }
            state.overtimeReads += retire(&entry, now: now)
            let admitted = admit(&entry, now: now)
            var expired: [Waiter] = []
            while let first = entry.waiters.first, first.until <= now {
                expired.append(entry.waiters.removeFirst().waiter)
            }
            let timer = schedule(&entry)
            state.servers[server] = entry
            return (admitted, expired, timer)
        }
        for waiter in admitted { waiter.continuation.resume() }
        let error = DatabaseError(.busy, "no read on server \(server) could start within \(limits.wait): the server is busy; nothing was done")
        for waiter in expired { waiter.continuation.resume(throwing: error) }
        if let timer { wake(server, at: timer) }
    }

    private func abandon(_ id: UInt64, on server: String, with error: any Error) {
        let waiter: Waiter? = state.withLock { state in
            guard var entry = state.servers[server], let index = entry.waiters.firstIndex(where: { $0.waiter.id == id }) else { return nil }
            let waiter = entry.waiters.remove(at: index).waiter
            state.servers[server] = entry
            return waiter
        }
        waiter?.continuation.resume(throwing: error)
    }
}
