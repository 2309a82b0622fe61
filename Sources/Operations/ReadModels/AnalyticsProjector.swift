import Database
import Domain
import EventLog
import Foundation
import Logging
import PostgresNIO
import Projectors

/// What a batch of a tenant's events changes in the analytics read model, worked out without
/// I/O so that the counting rules are unit tests.
///
/// A command is one append: its events are contiguous and share one `recorded_at`, taken under
/// the tenant's head lock, so an event whose time differs from the one before starts the next
/// append. Appends to the `security` stream are records the platform makes about a tenant
/// (cross-tenant attempts against it), not commands of its own; their events still count.
public struct AnalyticsFold: Sendable, Equatable {
    public struct Pet: Sendable, Equatable {
        public var species: String
        public var removed: Bool

        public init(species: String, removed: Bool) {
            self.species = species
            self.removed = removed
        }
    }

    public struct Day: Sendable, Equatable {
        public var commands: Int
        public var events: Int

        public init(commands: Int = 0, events: Int = 0) {
            self.commands = commands
            self.events = events
        }
    }

    public struct Count: Sendable, Equatable {
        public var active: Int
        public var removed: Int

        public init(active: Int = 0, removed: Int = 0) {
            self.active = active
            self.removed = removed
        }
    }

    public static let recordStreamTypes: Set<String> = ["security"]

    /// The `recorded_at` of the last event folded, carried from batch to batch.
    public private(set) var lastAppend: String?
    /// Every pet this fold knows, including those loaded before it started.
    public private(set) var pets: [UUID: Pet]
    /// The pets whose row must be written.
    public private(set) var changedPets: Set<UUID> = []
    /// Additions to each UTC day (`YYYY-MM-DD`).
    public private(set) var days: [String: Day] = [:]
    /// Additions (possibly negative) to each species' counts.
    public private(set) var species: [String: Count] = [:]

    public init(lastAppend: String?, pets: [UUID: Pet] = [:]) {
        self.lastAppend = lastAppend
        self.pets = pets
    }

    /// The pets a batch refers to without registering them: what to load before folding it.
    public static func petsToLoad(_ events: [RecordedEvent]) -> Set<UUID> {
        var registered: Set<UUID> = []
        var wanted: Set<UUID> = []
        for event in events where event.stream.type == PetEventCoding.streamType {
            if event.type == PetRegistered.eventType { registered.insert(event.stream.id) }
            else if !registered.contains(event.stream.id) { wanted.insert(event.stream.id) }
        }
        return wanted
    }

    public mutating func fold(_ events: [RecordedEvent]) throws(EventLogError) {
        for event in events { try fold(event) }
    }

    public mutating func fold(_ event: RecordedEvent) throws(EventLogError) {
        let day = String(event.recordedAtText.prefix(10))
        if event.recordedAtText != lastAppend && !Self.recordStreamTypes.contains(event.stream.type) {
            days[day, default: Day()].commands += 1
        }
        days[day, default: Day()].events += 1
        lastAppend = event.recordedAtText
        guard event.stream.type == PetEventCoding.streamType else { return }
        let id = event.stream.id
        switch try PetEventCoding.decode(event) {
        case .registered(let registered):
            move(id, to: Pet(species: registered.species, removed: false))
        case .detailsChanged(let changed):
            guard let pet = pets[id] else { return }
            move(id, to: Pet(species: changed.species, removed: pet.removed))
        case .removed:
            guard let pet = pets[id] else { return }
            move(id, to: Pet(species: pet.species, removed: true))
        case .restored:
            guard let pet = pets[id] else { return }
            move(id, to: Pet(species: pet.species, removed: false))
        case .renamed:
            break
        }
    }

    private mutating func move(_ id: UUID, to new: Pet) {
        if let old = pets[id] { count(old, by: -1) }
        count(new, by: 1)
        pets[id] = new
        changedPets.insert(id)
    }

    private mutating func count(_ pet: Pet, by delta: Int) {
        if pet.removed { species[pet.species, default: Count()].removed += delta }
        else { species[pet.species, default: Count()].active += delta }
    }
}

/// `analytics`: per tenant, commands and events by day and pets by species; see
/// Projections/analytics.sql. A batch costs two statements, whatever its size: one reads what
/// the fold must know, one writes everything it changed.
public struct AnalyticsProjector: Projector {
    public let name = "analytics"
    /// Nobody reads their own writes here: a second between passes lets the log come in large batches.
    public let pacing: Duration

    public init(pacing: Duration = .seconds(1)) {
        self.pacing = pacing
    }

    public func apply(_ events: [RecordedEvent], in session: TenantSession) async throws {
        let tenant = session.tenant
        let t = tenant
        var cursor: String?
        var known: [UUID: AnalyticsFold.Pet] = [:]
        let rows = try await session.query("""
            SELECT NULL::uuid, NULL::text, NULL::boolean, last_append FROM analytics_cursor WHERE tenant_id = \(t)
            UNION ALL
            SELECT id, species, removed, NULL FROM analytics_pets
             WHERE tenant_id = \(t) AND id = ANY(\(Array(AnalyticsFold.petsToLoad(events)))::uuid[])
            """)
        for try await (id, species, removed, last) in rows.decode((UUID?, String?, Bool?, String?).self) {
            if let last { cursor = last }
            if let id, let species, let removed { known[id] = AnalyticsFold.Pet(species: species, removed: removed) }
        }
        var fold = AnalyticsFold(lastAppend: cursor, pets: known)
        try fold.fold(events)
        guard let last = fold.lastAppend else { return }

        let days = fold.days.sorted { $0.key < $1.key }
        let species = fold.species.filter { $0.value != AnalyticsFold.Count() }.sorted { $0.key < $1.key }
        let pets = fold.changedPets.sorted { $0.uuidString < $1.uuidString }.compactMap { id in fold.pets[id].map { (id, $0) } }
        try await session.run("""
            WITH daily AS (
              INSERT INTO analytics_daily (tenant_id, day, commands, events)
              SELECT \(t), d.day, d.commands, d.events
                FROM unnest(\(days.map(\.key))::date[], \(days.map { Int64($0.value.commands) })::bigint[],
                            \(days.map { Int64($0.value.events) })::bigint[]) AS d(day, commands, events)
              ON CONFLICT (tenant_id, day) DO UPDATE
                SET commands = analytics_daily.commands + EXCLUDED.commands, events = analytics_daily.events + EXCLUDED.events
            ), kinds AS (
              INSERT INTO analytics_species (tenant_id, species, active, removed)
              SELECT \(t), s.species, s.active, s.removed
                FROM unnest(\(species.map(\.key))::text[], \(species.map { Int64($0.value.active) })::bigint[],
                            \(species.map { Int64($0.value.removed) })::bigint[]) AS s(species, active, removed)
              ON CONFLICT (tenant_id, species) DO UPDATE
                SET active = analytics_species.active + EXCLUDED.active, removed = analytics_species.removed + EXCLUDED.removed
            ), pets AS (
              INSERT INTO analytics_pets (tenant_id, id, species, removed)
              SELECT \(t), p.id, p.species, p.removed
                FROM unnest(\(pets.map(\.0))::uuid[], \(pets.map(\.1.species))::text[], \(pets.map(\.1.removed))::boolean[])
                  AS p(id, species, removed)
              ON CONFLICT (tenant_id, id) DO UPDATE SET species = EXCLUDED.species, removed = EXCLUDED.removed
            )
            INSERT INTO analytics_cursor (tenant_id, last_append) VALUES (\(t), \(last))
            ON CONFLICT (tenant_id) DO UPDATE SET last_append = EXCLUDED.last_append
            """)
    }
}
