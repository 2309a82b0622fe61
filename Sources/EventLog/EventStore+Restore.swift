import Database
import Foundation
import Logging
import PostgresNIO

extension EventStore {
    /// Writes events as they were recorded elsewhere (seq, time and hashes kept) in the session's
    /// unit of work, and moves the head to the last one. For replaying an export into an empty
    /// database; `append` is for new events.
    public static func restore(_ events: [RecordedEvent], in session: TenantSession) async throws {
        guard let last = events.last else { return }
        let tenant = session.tenant
        for event in events {
            try await session.run("""
                INSERT INTO events (tenant_id, seq, stream_type, stream_id, stream_version, event_type, schema_version, data, metadata,
                                    recorded_at, prev_hash, hash)
                VALUES (\(tenant), \(event.seq), \(event.stream.type), \(event.stream.id), \(Int32(event.streamVersion)), \(event.type),
                        \(Int16(event.schemaVersion)), \(String(decoding: CanonicalJSON.serialize(event.data), as: UTF8.self))::jsonb,
                        \(String(decoding: CanonicalJSON.serialize(event.metadataJSON), as: UTF8.self))::jsonb,
                        \(event.recordedAtText)::timestamptz, \(ByteBuffer(bytes: event.prevHash)), \(ByteBuffer(bytes: event.hash)))
                """)
        }
        try await session.run("""
            INSERT INTO event_heads (tenant_id, last_seq, head_hash) VALUES (\(tenant), \(last.seq), \(ByteBuffer(bytes: last.hash)))
            ON CONFLICT (tenant_id) DO UPDATE SET last_seq = excluded.last_seq, head_hash = excluded.head_hash, updated_at = now()
            """)
    }
}
