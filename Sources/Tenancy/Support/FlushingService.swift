import Database
import Logging
import ServiceLifecycle
import Synchronization

/// A service whose work piles up in memory off the request path and is written every
/// `interval`. Graceful shutdown cuts the wait short and writes what is left, so only a
/// process killed outright, or a database that does not answer within `shutdownWait` at
/// shutdown, loses its last interval.
public protocol FlushingService: Service, Sendable {
    var interval: Duration { get }
    var logger: Logger { get }
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
        // The periodic writes run in a task of their own, so that one waiting on the database
        // when shutdown begins (a lock, a server that does not answer) does not hold it up.
        let interval = self.interval
        let periodic = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: interval)
                guard !Task.isCancelled else { break }
                await flush()
            }
        }
        try? await gracefulShutdown()
        periodic.cancel()
        // The last write comes after any periodic one still under way (`flushes` keeps them in
        // order), and is waited for at most `shutdownWait`: the process must be able to exit.
        let last = Task { await flush() }
        if await !finished(last, within: Self.shutdownWait) {
            last.cancel()
            logger.warning("what was left to write at shutdown was not written in time; it is lost",
                           metadata: ["service": "\(Self.self)", "wait": "\(Self.shutdownWait)"])
        }
    }

    /// How long the last write may take at shutdown.
    public static var shutdownWait: Duration { .seconds(5) }
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
