import Database
import Foundation
import PostgresNIO

/// The outcome of checking a tenant's chain.
public struct ChainVerification: Sendable, Equatable {
    public let valid: Bool
    /// Events checked before the first problem (all of them when valid).
    public let checked: Int64
    /// The last good seq and its hash: the head when valid.
    public let headSeq: Int64
    public let headHash: [UInt8]
    /// The first seq at which the stored log disagrees with its chain.
    public let firstBadSeq: Int64?
    public let reason: String?
}

extension EventStore {
    /// Recomputes a tenant's chain from seq 1 and compares it with every stored hash and with the
    /// head row: an edited field, a deleted or reordered row, or a cut tail each name the first
    /// seq that is wrong.
    public func verify(tenant: TenantID, pageSize: Int = 2000) async throws(EventLogError) -> ChainVerification {
        var verifier = ChainVerifier()
        for try await event in events(tenant: tenant, pageSize: pageSize) {
            if let failure = verifier.check(event) { return failure }
        }
        let head: (Int64, [UInt8])?
        do {
            head = try await database.readTenant(tenant) { session in
                let rows = try await session.query("SELECT last_seq, head_hash FROM event_heads WHERE tenant_id = \(session.tenant)")
                return try await rows.decode((Int64, ByteBuffer).self).first(where: { _ in true }).map { ($0.0, Array(buffer: $0.1)) }
            }
        } catch {
            throw Self.map(error)
        }
        return verifier.finish(head: head)
    }
}

/// Walks a log in seq order, checking continuity and hashes.
public struct ChainVerifier: Sendable {
    public private(set) var expectedSeq: Int64 = 1
    public private(set) var previous = CanonicalEvent.genesisHash

    public init() {}

    /// A chain that starts after `seq`, whose event hashed to `previous`: for part of a log.
    public init(after seq: Int64, previous: [UInt8]) {
        self.expectedSeq = seq + 1
        self.previous = previous
    }

    /// Nil while the chain holds; the failure at the first event that breaks it.
    public mutating func check(_ event: RecordedEvent) -> ChainVerification? {
        guard event.seq == expectedSeq else {
            return failure(at: expectedSeq, event.seq > expectedSeq
                ? "seq \(expectedSeq) is missing: the next stored event is \(event.seq)"
                : "seq \(event.seq) appears out of order after \(expectedSeq - 1)")
        }
        guard event.prevHash == previous else {
            return failure(at: event.seq, "seq \(event.seq) does not link to the hash of the event before it")
        }
        let recomputed = CanonicalEvent.hash(previous: previous, canonical: event.canonicalBytes)
        guard recomputed == event.hash else {
            return failure(at: event.seq, "seq \(event.seq) does not match its hash: its content was changed")
        }
        previous = recomputed
        expectedSeq += 1
        return nil
    }

    /// The verdict once every stored event was checked; `head` is what the log claims to end at.
    public func finish(head: (lastSeq: Int64, hash: [UInt8])?) -> ChainVerification {
        let last = expectedSeq - 1
        if let head {
            if head.lastSeq > last {
                return failure(at: last + 1, "the log ends at seq \(last) but its head says \(head.lastSeq): events were removed")
            }
            if head.lastSeq < last || head.hash != previous {
                return failure(at: head.lastSeq < last ? head.lastSeq + 1 : last, "the head does not match the last event")
            }
        } else if last > 0 {
            return failure(at: 1, "the log has events but no head")
        }
        return ChainVerification(valid: true, checked: last, headSeq: last, headHash: previous, firstBadSeq: nil, reason: nil)
    }

    func failure(at seq: Int64, _ reason: String) -> ChainVerification {
        ChainVerification(valid: false, checked: expectedSeq - 1, headSeq: expectedSeq - 1, headHash: previous, firstBadSeq: seq, reason: reason)
    }
}
