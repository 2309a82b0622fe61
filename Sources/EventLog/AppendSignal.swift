import Database
import Synchronization

/// Wakes readers in this process when a tenant's log grows, and tells the notification relay
/// what to pass on to other processes.
///
/// Subscribers get the set of tenants appended to since they last looked; sets are merged while a
/// subscriber is busy, so a slow projector sees one wake-up, never a backlog of them.
public final class AppendSignal: Sendable {
    public enum Origin: Sendable { case local, remote }

    private struct Subscriber {
        let continuation: AsyncStream<Set<TenantID>>.Continuation
        let origins: Set<Origin>
    }

    private let state = Mutex<(next: Int, subscribers: [Int: Subscriber])>((0, [:]))
    private let localHeads = Mutex<[TenantID: Int64]>([:])

    public init() {}

    /// Called after an append that ended at `seq` committed in this process.
    public func appended(_ tenant: TenantID, through seq: Int64) {
        // Before the wake-up: a reader woken by this append finds its seq here.
        localHeads.withLock { heads in heads[tenant] = max(heads[tenant] ?? 0, seq) }
        publish([tenant], origin: .local)
    }

    /// The last seq appended to the tenant's log by this process, as far as it has been told.
    public func lastLocalAppend(of tenant: TenantID) -> Int64? {
        localHeads.withLock { $0[tenant] }
    }

    /// Called when another process reports appends.
    public func publish(_ tenants: Set<TenantID>, origin: Origin) {
        let targets = state.withLock { state in state.subscribers.values.filter { $0.origins.contains(origin) } }
        for target in targets { target.continuation.yield(tenants) }
    }

    /// A stream of wake-ups. Consecutive sets are not merged by the stream itself; at most the
    /// newest 64 are kept for a subscriber that falls behind, which is harmless because every
    /// reader re-reads from its own checkpoint.
    public func subscribe(origins: Set<Origin> = [.local, .remote]) -> AsyncStream<Set<TenantID>> {
        let (stream, continuation) = AsyncStream.makeStream(of: Set<TenantID>.self, bufferingPolicy: .bufferingNewest(64))
        let id = state.withLock { state in
            let id = state.next
            state.next += 1
            state.subscribers[id] = Subscriber(continuation: continuation, origins: origins)
            return id
        }
        continuation.onTermination = { [weak self] _ in
            self?.state.withLock { state in _ = state.subscribers.removeValue(forKey: id) }
        }
        return stream
    }
}
