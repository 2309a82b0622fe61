import Synchronization

/// Deadlines watched by one timer task for all of them (the requests in flight, the leases of
/// the tenant databases' pools): a sleeping task each cost a timer registration and two task
/// switches every time, and a cancelled `Task.sleep` keeps its timer, and the memory of the task
/// that slept, until the time it was set for (bench/RESULTS.md). The timer runs only while some
/// deadline is pending, so it never outlives the work it watches.
package final class DeadlineTimer: Sendable {
    private struct State {
        var next: UInt64 = 0
        var pending: [UInt64: (due: ContinuousClock.Instant, action: @Sendable () -> Void)] = [:]
        var ticking = false
    }

    private let state = Mutex(State())
    /// How late past its deadline an action may run.
    package let resolution: Duration

    package init(resolution: Duration) {
        self.resolution = resolution
    }

    /// Runs `action` once `delay` has passed, unless cancelled first.
    package func schedule(after delay: Duration, _ action: @escaping @Sendable () -> Void) -> UInt64 {
        schedule(at: .now + delay, action)
    }

    /// Runs `action` once `due` has passed (at most `resolution` later), unless cancelled first.
    package func schedule(at due: ContinuousClock.Instant, _ action: @escaping @Sendable () -> Void) -> UInt64 {
        let (id, start) = state.withLock { state -> (UInt64, Bool) in
            state.next += 1
            state.pending[state.next] = (due, action)
            defer { state.ticking = true }
            return (state.next, !state.ticking)
        }
        if start { Task { await self.tick() } }
        return id
    }

    package func cancel(_ id: UInt64) {
        _ = state.withLock { $0.pending.removeValue(forKey: id) }
    }

    private func tick() async {
        while true {
            try? await Task.sleep(for: resolution)
            let now = ContinuousClock.now
            let (due, idle) = state.withLock { state -> ([@Sendable () -> Void], Bool) in
                let expired = state.pending.filter { $0.value.due <= now }
                for id in expired.keys { state.pending[id] = nil }
                if state.pending.isEmpty { state.ticking = false }
                return (expired.values.map(\.action), state.pending.isEmpty)
            }
            for action in due { action() }
            if idle { return }
        }
    }
}
