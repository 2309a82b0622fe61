import Foundation
import PostgresNIO

// The event log's hot statements, prepared once per connection. Their SQL is checked by
// EventLogStatementTests so that a change here is a deliberate one.

/// `append_events(…)`: the whole append in one statement; see Schema/0002_event_log.sql.
struct AppendEvents: PostgresPreparedStatement {
    static let sql = """
        SELECT first_seq, last_seq, head_hash, recorded_at, stream_versions
          FROM append_events($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
        """
    typealias Row = (Int64, Int64, ByteBuffer, String, [Int32])

    let tenant: UUID
    let metadata: String
    var streamTypes: [String] = []
    var streamIDs: [UUID] = []
    /// -1: any; 0: no stream; n: exactly n.
    var expected: [Int32] = []
    /// 1-based index into the streams, per event.
    var eventStreams: [Int32] = []
    var eventTypes: [String] = []
    var eventTypeJSON: [String] = []
    var schemaVersions: [Int16] = []
    var data: [String] = []

    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings()
        bindings.append(tenant)
        bindings.append(metadata)
        bindings.append(streamTypes)
        bindings.append(streamIDs)
        bindings.append(expected)
        bindings.append(eventStreams)
        bindings.append(eventTypes)
        bindings.append(eventTypeJSON)
        bindings.append(schemaVersions)
        bindings.append(data)
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
