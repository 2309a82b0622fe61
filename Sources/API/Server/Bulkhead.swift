import Foundation
import Hummingbird
import Synchronization

/// A share of the request pool per tenant: one tenant's requests hold at most `perKey` of the
/// `capacity` slots at once (one slot stands for the one connection a request uses at a time),
/// so a tenant whose requests stall cannot take the connections every other tenant needs.
///
/// Waiters are served first come, first served among those whose tenant is under its share; a
/// wait longer than `wait` ends in `BulkheadError.full`, which the API answers with 503.
public final class Bulkhead: Sendable {
    public let capacity: Int
    public let perKey: Int
    public let wait: Duration

    private struct Waiter {
        let id: UInt64
        let key: String
        let continuation: CheckedContinuation<Void, any Error>
    }

    private struct State {
        var inUse = 0
        var held: [String: Int] = [:]
        var waiters: [Waiter] = []
        var nextID: UInt64 = 0

        func admits(_ key: String, capacity: Int, perKey: Int) -> Bool {
            inUse < capacity && held[key, default: 0] < perKey
        }

        mutating func take(_ key: String) {
            inUse += 1
            held[key, default: 0] += 1
        }
    }

    private let state = Mutex(State())

    public init(capacity: Int, perKey: Int, wait: Duration) {
        self.capacity = max(1, capacity)
        self.perKey = min(max(1, perKey), max(1, capacity))
        self.wait = wait
    }

    /// Runs `body` holding one of `key`'s slots.
    public func withSlot<Result: Sendable>(for key: String, _ body: () async throws -> Result) async throws -> Result {
        try await acquire(key)
        defer { release(key) }
        return try await body()
    }

    /// Slots held now, by key (for tests and metrics).
    public var held: [String: Int] { state.withLock { $0.held } }

    func acquire(_ key: String) async throws {
        let admitted = state.withLock { state in
            guard state.admits(key, capacity: capacity, perKey: perKey) else { return false }
            state.take(key)
            return true
        }
        if admitted { return }
        let id = state.withLock { state in
            state.nextID += 1
            return state.nextID
        }
        let wait = self.wait
        let timer = TimerBox()
        defer { timer.task.withLock { $0 }?.cancel() }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let admitted = state.withLock { state -> Bool in
                    // A slot freed since the first look: take it rather than queue.
                    if state.admits(key, capacity: capacity, perKey: perKey) {
                        state.take(key)
                        return true
                    }
                    state.waiters.append(Waiter(id: id, key: key, continuation: continuation))
                    return false
                }
                if admitted {
                    continuation.resume()
                    return
                }
                timer.task.withLock {
                    $0 = Task {
                        do { try await Task.sleep(for: wait) } catch { return }
                        self.abandon(id, with: BulkheadError.full(key: key, wait: wait))
                    }
                }
            }
        } onCancel: {
            self.abandon(id, with: CancellationError())
        }
    }

    func release(_ key: String) {
        let woken: CheckedContinuation<Void, any Error>? = state.withLock { state in
            state.inUse -= 1
            state.held[key, default: 1] -= 1
            if state.held[key] == 0 { state.held[key] = nil }
            guard let index = state.waiters.firstIndex(where: { state.admits($0.key, capacity: capacity, perKey: perKey) }) else { return nil }
            let waiter = state.waiters.remove(at: index)
            state.take(waiter.key)
            return waiter.continuation
        }
        woken?.resume()
    }

    private func abandon(_ id: UInt64, with error: any Error) {
        let waiter: Waiter? = state.withLock { state in
            guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return nil }
            return state.waiters.remove(at: index)
        }
        waiter?.continuation.resume(throwing: error)
    }
}

private final class TimerBox: Sendable {
    let task = Mutex<Task<Void, Never>?>(nil)
}

public enum BulkheadError: Error, Sendable {
    case full(key: String, wait: Duration)
}

/// Holds one of the tenant's slots of the bulkhead for the rest of the request.
struct BulkheadMiddleware<Context: RequestContext>: RouterMiddleware {
    let bulkhead: Bulkhead
    let key: @Sendable (Context) -> String

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            try await bulkhead.acquire(key(context))
        } catch is BulkheadError {
            throw Problem.poolShareExhausted(wait: bulkhead.wait)
        }
        defer { bulkhead.release(key(context)) }
        return try await next(request, context)
    }
}

extension Problem {
    static func poolShareExhausted(wait: Duration) -> Problem {
        Problem(type: typeBase + "service-unavailable", title: "Service Unavailable", status: .serviceUnavailable,
                detail: "Too many of this tenant's requests are waiting for the database; none was free within \(wait.components.seconds) s. Nothing was done: retry later.",
                headers: [.retryAfter: "1"])
    }
}
