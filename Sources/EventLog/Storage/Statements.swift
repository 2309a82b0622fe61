import Database
import Foundation
import PostgresNIO

// The event log's hot statements, prepared once per connection.

/// `append_events(…)`: the whole append in one statement; see Schema/0002_event_log.sql and its
/// tenant check in 0010_tenant_assertions.sql.
struct AppendEvents: TenantFunction {
    static let name = "append_events"
    static let parameterTypes = ["text", "text[]", "uuid[]", "integer[]", "integer[]", "text[]", "text[]", "smallint[]", "text[]"]
    typealias Row = (Int64, Int64, ByteBuffer, String, [Int32])

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

    func bind(into bindings: inout PostgresBindings) {
        bindings.append(metadata)
        bindings.append(streamTypes)
        bindings.append(streamIDs)
        bindings.append(expected)
        bindings.append(eventStreams)
        bindings.append(eventTypes)
        bindings.append(eventTypeJSON)
        bindings.append(schemaVersions)
        bindings.append(data)
    }

    func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Row.self) }
}

/// `append_events_checked(…)`: the append of `AppendEvents` answering a wrong expected version
/// (conflict_stream set, nothing written) instead of raising it, and returning the head before
/// the append and every event's hash; see Schema/0021_append_checked.sql.
struct AppendEventsChecked: TenantFunction {
    static let name = "append_events_checked"
    static let parameterTypes = AppendEvents.parameterTypes
    /// first_seq, last_seq, head_hash, recorded_at, stream_versions, conflict_stream, prev_hash, hashes.
    typealias Row = (Int64?, Int64?, ByteBuffer?, String?, [Int32], Int32?, ByteBuffer?, ByteBuffer?)

    let append: AppendEvents

    func bind(into bindings: inout PostgresBindings) { append.bind(into: &bindings) }

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
    static let name = "read_tenant_log"
    static let sql = "SELECT \(EventColumns.list) FROM events WHERE tenant_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"
    typealias Row = EventColumns.Row

    let tenant: TenantID
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
    static let name = "read_stream"
    static let sql = """
        SELECT \(EventColumns.list) FROM events
         WHERE tenant_id = $1 AND stream_type = $2 AND stream_id = $3 AND stream_version > $4
           AND recorded_at <= $5::timestamptz
         ORDER BY stream_version LIMIT $6
        """
    typealias Row = EventColumns.Row

    let tenant: TenantID
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
