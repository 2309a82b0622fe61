import Database
import Foundation
import Logging
import PostgresNIO
import Synchronization

/// Sends the takes that requests are waiting for to the database together: while one batch is
/// in flight the next collects, and goes as soon as the first returns (group commit). Under
/// load one round trip serves many requests; at rest a take goes at once, alone. Every decision
/// is still the database's, so the limit stays exact across processes.
final class RateLimitBatcher: Sendable {
    struct Take: Sendable, Hashable {
        let tenant: UUID
        let wanted: Int32
        /// The plan's quota window (`limit`, `period` in microseconds) and burst limit.
        let quota: Int32
        let period: Int64
        let emission: Int64
        let burst: Int32
        /// Leased earlier, not spent, given back; and the quota window they were leased in.
        var returned: Int32 = 0
        var returnedWindow: Int64 = 0
    }

    /// What the database decided: the grant, the window's count after it and the window's start,
    /// the burst limit's TAT after it, and the database's clock.
    typealias Result = (granted: Int32, used: Int32, window: Int64, tat: Int64, now: Int64)

    private struct Waiting {
        let take: Take
        let continuation: CheckedContinuation<Result, any Error>
    }

    private let client: PostgresClient
    private let logger: Logger
    /// Takes waiting for the next batch, and whether a batch is in flight.
    private let state = Mutex<(queue: [Waiting], flying: Bool)>(([], false))
    /// Statements sent and takes they carried, for the metrics.
    let statements = Atomic<Int>(0)
    let takes = Atomic<Int>(0)
    /// The most takes one statement carries.
    private let batchLimit = 256

    init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    func take(_ take: Take) async throws -> Result {
        try await withCheckedThrowingContinuation { continuation in
            let start = state.withLock { state -> Bool in
                state.queue.append(Waiting(take: take, continuation: continuation))
                guard !state.flying else { return false }
                state.flying = true
                return true
            }
            if start { Task { await self.fly() } }
        }
    }

    private func fly() async {
        while true {
            let batch = state.withLock { state -> [Waiting] in
                let batch = Array(state.queue.prefix(batchLimit))
                state.queue.removeFirst(batch.count)
                if batch.isEmpty { state.flying = false }
                return batch
            }
            guard !batch.isEmpty else { return }
            // One take per tenant (and plan, and window of what is given back): granting the sum
            // and sharing it out first come, first served is what taking them one after the
            // other would give.
            var groups: [Take: [Int]] = [:]
            var order: [Take] = []
            for (index, waiting) in batch.enumerated() {
                let take = waiting.take
                let key = Take(tenant: take.tenant, wanted: 0, quota: take.quota, period: take.period, emission: take.emission,
                               burst: take.burst, returnedWindow: take.returned > 0 ? take.returnedWindow : 0)
                if groups[key] == nil { order.append(key) }
                groups[key, default: []].append(index)
            }
            let takes = order.map { key in
                Take(tenant: key.tenant, wanted: groups[key]!.reduce(Int32(0)) { $0 + batch[$1].take.wanted }, quota: key.quota,
                     period: key.period, emission: key.emission, burst: key.burst,
                     returned: groups[key]!.reduce(Int32(0)) { $0 + batch[$1].take.returned }, returnedWindow: key.returnedWindow)
            }
            do {
                let results = try await run(takes)
                for (position, key) in order.enumerated() {
                    guard let result = results[position] else {
                        for index in groups[key]! { batch[index].continuation.resume(throwing: RateLimitStoreError()) }
                        continue
                    }
                    // Each as if taken on its own, in turn: its count and TAT are those after its share.
                    var left = result.granted
                    for index in groups[key]! {
                        let share = min(left, batch[index].take.wanted)
                        left -= share
                        batch[index].continuation.resume(returning: (share, result.used - left, result.window,
                                                                     result.tat - Int64(left) * key.emission, result.now))
                    }
                }
            } catch {
                for waiting in batch { waiting.continuation.resume(throwing: error) }
            }
        }
    }

    private func run(_ takes: [Take]) async throws -> [Int: Result] {
        statements.add(1, ordering: .relaxed)
        self.takes.add(takes.count, ordering: .relaxed)
        let rows = try await client.query("""
            SELECT ord, granted, used, window_start, tat_us, now_us
              FROM quota_take_many(\(takes.map(\.tenant)), \(takes.map(\.wanted)), \(takes.map(\.quota)), \(takes.map(\.period)),
                                   \(takes.map(\.emission)), \(takes.map(\.burst)), NULL, \(takes.map(\.returned)), \(takes.map(\.returnedWindow)))
            """, logger: logger)
        var results: [Int: Result] = [:]
        for try await (ordinal, granted, used, window, tat, now) in rows.decode((Int32, Int32, Int32, Int64, Int64, Int64).self) {
            results[Int(ordinal) - 1] = (granted, used, window, tat, now)
        }
        return results
    }
}
