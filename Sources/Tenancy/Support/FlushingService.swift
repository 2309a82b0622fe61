import ServiceLifecycle
import Synchronization

/// A service whose work piles up in memory off the request path and is written every
/// `interval`. Graceful shutdown cuts the wait short and writes what is left, so only a
/// process killed outright loses its last interval.
public protocol FlushingService: Service, Sendable {
    var interval: Duration { get }
    /// Keeps `flush()` calls in order.
    var flushes: FlushQueue { get }
    /// Writes what is pending; what fails to write stays for the next call.
    func writePending() async
}

extension FlushingService {
    /// Writes everything recorded before the call. It returns only once that is written (or kept
    /// after a failure), even when the periodic flush has taken it and is still writing it.
    public func flush() async {
        await flushes.run { await self.writePending() }
    }

    public func run() async throws {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            let interval = self.interval
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
            await flush()
        }
        await flush()
    }
}

/// Runs work one piece after another, each in its caller's task (so a cancelled caller cancels
/// its own write, whose entries then stay for the next flush) and each after the one before.
public final class FlushQueue: Sendable {
    private struct State {
        var busy = false
        var waiting: [CheckedContinuation<Void, Never>] = []
    }

    private let state = Mutex(State())

    public init() {}

    public func run(_ work: @Sendable () async -> Void) async {
        await withCheckedContinuation { (turn: CheckedContinuation<Void, Never>) in
            let now = state.withLock { state -> Bool in
                if state.busy {
                    state.waiting.append(turn)
                    return false
                }
                state.busy = true
                return true
            }
            if now { turn.resume() }
        }
        await work()
        // Hand the turn to the next caller, if any; it was waiting for everything before it.
        let next = state.withLock { state -> CheckedContinuation<Void, Never>? in
            if state.waiting.isEmpty {
                state.busy = false
                return nil
            }
            return state.waiting.removeFirst()
        }
        next?.resume()
    }
}
