import Database
import Foundation
import Logging
import PostgresNIO

extension EventStore {
    /// Signs the tenant's head as it is now and keeps the checkpoint; the one already kept when
    /// the head has not moved. Nil for an empty log.
    public func checkpoint(tenant: TenantID, signer: CheckpointSigner) async throws(EventLogError) -> Checkpoint? {
        do {
            return try await database.withTenant(tenant) { session -> Checkpoint? in
                // FOR SHARE: no append moves the head between reading and signing it.
                let heads = try await session.query(
                    "SELECT last_seq, head_hash FROM event_heads WHERE tenant_id = \(session.tenant) FOR SHARE")
                guard let (seq, hash) = try await heads.decode((Int64, ByteBuffer).self).first(where: { _ in true }), seq > 0 else { return nil }
                if let kept = try await Self.checkpoints(limit: 1, in: session).first, kept.seq == seq {
                    return kept
                }
                let signed = try signer.sign(tenant: tenant, seq: seq, headHash: Array(buffer: hash))
                try await session.run("""
                    INSERT INTO checkpoints (tenant_id, seq, head_hash, signed_at, key_id, signature)
                    VALUES (\(session.tenant), \(seq), \(ByteBuffer(bytes: signed.headHash)), \(signed.signedAt), \(signed.keyID),
                            \(ByteBuffer(bytes: signed.signature)))
                    """)
                return signed
            }
        } catch {
            throw Self.map(error)
        }
    }

    /// The tenant's checkpoints, newest first.
    public func checkpoints(tenant: TenantID, limit: Int = 20) async throws(EventLogError) -> [Checkpoint] {
        do {
            return try await database.readTenant(tenant) { session in try await Self.checkpoints(limit: limit, in: session) }
        } catch {
            throw Self.map(error)
        }
    }

    static func checkpoints(limit: Int, in session: TenantSession) async throws -> [Checkpoint] {
        let tenant = session.tenant
        let rows = try await session.query("""
            SELECT seq, head_hash, signed_at, key_id, signature FROM checkpoints
             WHERE tenant_id = \(tenant) ORDER BY seq DESC LIMIT \(limit)
            """)
        var result: [Checkpoint] = []
        for try await (seq, hash, signedAt, keyID, signature) in rows.decode((Int64, ByteBuffer, String, String, ByteBuffer).self) {
            result.append(Checkpoint(tenant: tenant, seq: seq, headHash: Array(buffer: hash), signedAt: signedAt, keyID: keyID,
                                     signature: Array(buffer: signature)))
        }
        return result
    }

    /// The hash of the tenant's event `seq`, nil when there is no such event.
    public func hash(tenant: TenantID, seq: Int64) async throws(EventLogError) -> [UInt8]? {
        do {
            return try await database.readTenant(tenant) { session in
                let rows = try await session.query("SELECT hash FROM events WHERE tenant_id = \(session.tenant) AND seq = \(seq)")
                return try await rows.decode(ByteBuffer.self).first(where: { _ in true }).map { Array(buffer: $0) }
            }
        } catch {
            throw Self.map(error)
        }
    }

    /// Tenants whose log grew since their latest checkpoint.
    public func checkpointsDue() async throws(EventLogError) -> [TenantID] {
        do {
            let rows = try await client.query("SELECT tenant_id FROM checkpoints_due()", logger: logger)
            var result: [TenantID] = []
            for try await id in rows.decode(UUID.self) { result.append(TenantID(id)) }
            return result
        } catch {
            throw Self.map(error)
        }
    }
}
