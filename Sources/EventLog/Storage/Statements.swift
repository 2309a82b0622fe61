import Foundation
import PostgresNIO

// The event log's hot statements, prepared once per connection. Their SQL is checked by
// EventLogStatementTests so that a change here is a deliberate one.

/// `SELECT begin_append(…)`: enter the tenant, lock its head, read stream versions and the time.
struct BeginAppend: PostgresPreparedStatement {
    static let sql = "SELECT last_seq, head_hash, recorded_at, stream_versions FROM begin_append($1, $2, $3)"
    typealias Row = (Int64, ByteBuffer, String, [Int32])

    let tenant: UUID
    let streamTypes: [String]
    let streamIDs: [UUID]

    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings()
        bindings.append(tenant)
        bindings.append(streamTypes)
        bindings.append(streamIDs)
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Row.self) }
}

/// Inserts a batch of events and moves the tenant's head, in one statement.
struct InsertEvents: PostgresPreparedStatement {
    static let sql = """
        WITH inserted AS (
          INSERT INTO events (tenant_id, seq, stream_type, stream_id, stream_version, event_type, schema_version,
                              data, metadata, recorded_at, prev_hash, hash)
          SELECT $1, e.seq, e.stream_type, e.stream_id, e.stream_version, e.event_type, e.schema_version,
                 e.data::jsonb, $2::jsonb, $3::timestamptz, e.prev_hash, e.hash
            FROM unnest($4::bigint[], $5::text[], $6::uuid[], $7::int[], $8::text[], $9::smallint[], $10::text[],
                        $11::bytea[], $12::bytea[])
              AS e(seq, stream_type, stream_id, stream_version, event_type, schema_version, data, prev_hash, hash)
          RETURNING 1
        )
        UPDATE event_heads SET last_seq = $13, head_hash = $14, updated_at = $3::timestamptz
         WHERE tenant_id = $1 AND (SELECT count(*) FROM inserted) = $15
        RETURNING last_seq
        """
    typealias Row = Int64

    let tenant: UUID
    let metadata: String
    let recordedAt: String
    var seqs: [Int64] = []
    var streamTypes: [String] = []
    var streamIDs: [UUID] = []
    var streamVersions: [Int32] = []
    var eventTypes: [String] = []
    var schemaVersions: [Int16] = []
    var data: [String] = []
    var prevHashes: [ByteBuffer] = []
    var hashes: [ByteBuffer] = []
    var lastSeq: Int64 = 0
    var headHash = ByteBuffer()

    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings()
        bindings.append(tenant)
        bindings.append(metadata)
        bindings.append(recordedAt)
        bindings.append(seqs)
        bindings.append(streamTypes)
        bindings.append(streamIDs)
        bindings.append(streamVersions)
        bindings.append(eventTypes)
        bindings.append(schemaVersions)
        bindings.append(data)
        bindings.append(prevHashes)
        bindings.append(hashes)
        bindings.append(lastSeq)
        bindings.append(headHash)
        bindings.append(Int64(seqs.count))
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Row.self) }
}

/// The columns every event read returns, in `RecordedEvent` order.
enum EventColumns {
    static let list = """
        seq, stream_type, stream_id, stream_version, event_type, schema_version, data::text, metadata::text,
        to_char(recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), prev_hash, hash
        """
    typealias Row = (Int64, String, UUID, Int32, String, Int16, String, String, String, ByteBuffer, ByteBuffer)
}

/// A page of a tenant's log after a seq.
struct ReadTenantLog: PostgresPreparedStatement {
    static let sql = "SELECT \(EventColumns.list) FROM events WHERE tenant_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"
    typealias Row = EventColumns.Row

    let tenant: UUID
    let after: Int64
    let limit: Int64

    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings()
        bindings.append(tenant)
        bindings.append(after)
        bindings.append(limit)
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Row.self) }
}

/// A stream's events after a version, up to a time.
struct ReadStream: PostgresPreparedStatement {
    static let sql = """
        SELECT \(EventColumns.list) FROM events
         WHERE tenant_id = $1 AND stream_type = $2 AND stream_id = $3 AND stream_version > $4
           AND recorded_at <= $5::timestamptz
         ORDER BY stream_version LIMIT $6
        """
    typealias Row = EventColumns.Row

    let tenant: UUID
    let stream: StreamName
    let afterVersion: Int32
    let until: String
    let limit: Int64

    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings()
        bindings.append(tenant)
        bindings.append(stream.type)
        bindings.append(stream.id)
        bindings.append(afterVersion)
        bindings.append(until)
        bindings.append(limit)
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Row.self) }
}
