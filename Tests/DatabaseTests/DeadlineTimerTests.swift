import Synchronization
import Testing
@testable import Database

/// One ticking task ends the bounded waits of requests and of the pools' leases: each wait ends
/// once its deadline has passed, never one that was cancelled, and the ticking starts again after
/// it stopped with nothing left to watch.
@Suite struct DeadlineTimerTests {
    @Test func `a wait ends after its deadline, and a cancelled one never does`() async throws {
        let timer = DeadlineTimer(resolution: .milliseconds(10))
        let ended = Mutex<[String]>([])
        let start = ContinuousClock.now
        _ = timer.schedule(after: .milliseconds(30)) { ended.withLock { $0.append("first") } }
        let cancelled = timer.schedule(after: .milliseconds(30)) { ended.withLock { $0.append("cancelled") } }
        timer.cancel(cancelled)
        try await waitFor { ended.withLock { $0 } == ["first"] }
        #expect(ContinuousClock.now - start >= .milliseconds(30), "not before its deadline")
        // Past the cancelled one's deadline by many ticks: still not called.
        try await Task.sleep(for: .milliseconds(100))
        #expect(ended.withLock { $0 } == ["first"])

        // Nothing is watched now, so the ticking stopped; a new wait starts it again.
        _ = timer.schedule(after: .milliseconds(20)) { ended.withLock { $0.append("second") } }
        try await waitFor { ended.withLock { $0 } == ["first", "second"] }
    }
}

/// Polls `condition`; fails past 10 s.
private func waitFor(_ condition: () -> Bool) async throws {
    let deadline = ContinuousClock.now + .seconds(10)
    while !condition() {
        guard ContinuousClock.now < deadline else {
            Issue.record("the condition did not come true within 10 s")
            return
        }
        try await Task.sleep(for: .milliseconds(5))
    }
}
