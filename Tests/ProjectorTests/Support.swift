import Database
import EventLog
import Foundation
import Logging
import PetstoreTesting
import PostgresNIO
import Projectors

/// Counts events per tenant: a doubled or lost event shows as a wrong total, and the per-seq
/// table shows which.
struct CounterProjector: Projector {
    let name = "event_counter"

    static let definition = ProjectionDefinition(name: "event_counter", sql: """
        CREATE TABLE event_totals (tenant_id uuid PRIMARY KEY, applied bigint NOT NULL);
        CREATE TABLE event_seen (tenant_id uuid NOT NULL, seq bigint NOT NULL, times integer NOT NULL, PRIMARY KEY (tenant_id, seq));
        SELECT enable_tenant_rls('event_totals');
        SELECT enable_tenant_rls('event_seen');
        """)

    func apply(_ events: [RecordedEvent], in session: TenantSession) async throws {
        try await session.run("""
            INSERT INTO event_totals (tenant_id, applied) VALUES (\(session.tenant), \(events.count))
            ON CONFLICT (tenant_id) DO UPDATE SET applied = event_totals.applied + EXCLUDED.applied
            """)
        for event in events {
            try await session.run("""
                INSERT INTO event_seen (tenant_id, seq, times) VALUES (\(session.tenant), \(event.seq), 1)
                ON CONFLICT (tenant_id, seq) DO UPDATE SET times = event_seen.times + 1
                """)
        }
    }
}


func tick(_ store: EventStore, _ tenant: TenantID, count: Int) async throws {
    for index in 0..<count {
        try await store.append(tenant: tenant, stream: try StreamName(type: "tick", id: UUID()), expected: .any,
                               events: [NewEvent(type: "Tick", data: .object(["n": .number(Double(index))]))])
    }
}

/// Counts the events of one stream type per tenant, and says so (`streamTypes`): the runtime
/// gives it nothing else, and moves it past commands of other types.
struct StreamCounterProjector: Projector {
    let streamType: String
    var name: String { "\(streamType)_counter" }
    var streamTypes: Set<String>? { [streamType] }

    var definition: ProjectionDefinition {
        ProjectionDefinition(name: name, sql: """
            CREATE TABLE \(streamType)_totals (tenant_id uuid PRIMARY KEY, applied bigint NOT NULL, types text[] NOT NULL);
            SELECT enable_tenant_rls('\(streamType)_totals');
            """)
    }

    func apply(_ events: [RecordedEvent], in session: TenantSession) async throws {
        // Every type it was given, to show it was given only its own.
        let types = Array(Set(events.map(\.stream.type))).sorted()
        try await session.run(PostgresQuery(unsafeSQL: """
            INSERT INTO \(streamType)_totals (tenant_id, applied, types) VALUES ($1, $2, $3)
            ON CONFLICT (tenant_id) DO UPDATE SET applied = \(streamType)_totals.applied + EXCLUDED.applied,
                   types = ARRAY(SELECT DISTINCT unnest(\(streamType)_totals.types || EXCLUDED.types) ORDER BY 1)
            """, binds: {
                var binds = PostgresBindings()
                binds.append(session.tenant)
                binds.append(Int64(events.count))
                binds.append(types)
                return binds
            }()))
    }
}
