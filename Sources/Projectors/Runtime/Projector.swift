import Database
import EventLog
import Logging
import PostgresNIO

/// Turns a tenant's events into the rows of one read model.
///
/// `apply` runs inside the transaction that also advances the projection's checkpoint, with the
/// version's schema first on the search path, so unqualified table names are this version's.
/// It sees every event of the tenant in order (skipping those it does not care about) and must
/// be deterministic: a rebuild from the log yields the same rows.
public protocol Projector: Sendable {
    /// The name of its SQL file in Projections/, without `.sql`.
    var name: String { get }
    /// The least time between two background passes. Every append wakes the background loop;
    /// without a pause, a burst of commands costs a pass (and a transaction per tenant) per
    /// append, on top of the catch-up the command itself runs. Zero by default.
    var pacing: Duration { get }
    /// The stream types whose events it reads; nil for every type. `apply` is given only
    /// those, and a command whose events are all of other types moves this projection's
    /// checkpoint past them inline, in the statement that moves its own projection's: the
    /// background loop then has nothing to do for it. Nil by default.
    var streamTypes: Set<String>? { get }
    func apply(_ events: [RecordedEvent], in session: TenantSession) async throws
}

extension Projector {
    public var pacing: Duration { .zero }
    public var streamTypes: Set<String>? { nil }

    /// `apply` with the events of its stream types, if any.
    func applyRelevant(_ events: [RecordedEvent], in session: TenantSession) async throws {
        let relevant = streamTypes.map { types in events.filter { types.contains($0.stream.type) } } ?? events
        if !relevant.isEmpty { try await apply(relevant, in: session) }
    }
}
