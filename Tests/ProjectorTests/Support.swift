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
