import Database
import EventLog
import Foundation
import Logging
import PostgresNIO

/// UTC days from `from` to `to`, both included.
public struct AnalyticsRange: Sendable, Equatable {
    public let from: String
    public let to: String
    private let first: Int64
    private let last: Int64

    /// The longest range one report covers.
    public static let maximumDays = 366
    public static let defaultDays = 30

    public enum Failure: Error, Equatable, CustomStringConvertible {
        case notADay(field: String, value: String)
        /// A real day the logs cannot hold (before 1970, or year 0000, which PostgreSQL lacks).
        case outOfRange(field: String)
        case reversed
        case tooLong(days: Int)

        public var field: String {
            switch self {
            case .notADay(let field, _), .outOfRange(let field): field
            case .reversed: "from"
            case .tooLong: "to"
            }
        }

        public var description: String {
            switch self {
            case .notADay(let field, let value):
                "\(field) must be a calendar day such as 2026-01-31, not \"\(value.prefix(40))\"."
            case .outOfRange(let field):
                "\(field) must be a day from 1970-01-01 to 9999-12-31."
            case .reversed:
                "The range is reversed: from is after to."
            case .tooLong(let days):
                "The range covers \(days) days; at most \(AnalyticsRange.maximumDays) are reported at once."
            }
        }
    }

    /// The range the parameters name; missing ends default to the last 30 days up to today.
    public init(from: String?, to: String?, today: Date = Date()) throws(Failure) {
        let end = try to.map { raw throws(Failure) in try Self.day(raw, field: "to") } ?? Timestamps.dayNumber(of: today)
        let start = try from.map { raw throws(Failure) in try Self.day(raw, field: "from") } ?? end - Int64(Self.defaultDays - 1)
        guard start <= end else { throw .reversed }
        let count = Int(end - start) + 1
        guard count <= Self.maximumDays else { throw .tooLong(days: count) }
        first = start
        last = end
        self.from = Timestamps.dayText(start)
        self.to = Timestamps.dayText(end)
    }

    /// Every day of the range, in order.
    public var days: [String] {
        (first...last).map(Timestamps.dayText)
    }

    /// Days since 1970-01-01 of a strict `YYYY-MM-DD`; a date that does not exist (02-30) is refused.
    static func day(_ raw: String, field: String) throws(Failure) -> Int64 {
        guard raw.utf8.count == 10, let micros = Timestamps.microseconds(ofStored: raw + "T00:00:00.000000Z"),
              Timestamps.format(microseconds: micros).hasPrefix(raw) else {
            throw .notADay(field: field, value: raw)
        }
        let day = micros / 86_400_000_000
        guard Timestamps.acceptedDays.contains(day) else { throw .outOfRange(field: field) }
        return day
    }
}

/// The platform's analytics: per tenant and overall, pets by species, commands and events per
/// day, tenants by plan and status, requests refused for quota and cross-tenant attempts.
/// Pets, commands and events come from the `analytics` projection; plans and statuses from the
/// catalog; refusals and attempts from the counters the server keeps (they leave no event).
public struct AnalyticsReport: Codable, Sendable, Equatable {
    public struct Projection: Codable, Sendable, Equatable {
        public var version: String
        /// Tenants whose log has events the figures do not include yet, and how many.
        public var tenantsBehind: Int
        public var eventsBehind: Int64
    }

    public struct PlanCount: Codable, Sendable, Equatable {
        public var plan: String
        public var tenants: Int
    }

    public struct StatusCount: Codable, Sendable, Equatable {
        public var status: String
        public var tenants: Int
    }

    public struct Pets: Codable, Sendable, Equatable {
        public var active: Int64 = 0
        public var removed: Int64 = 0
    }

    public struct Species: Codable, Sendable, Equatable {
        public var species: String
        public var active: Int64
        public var removed: Int64

        public init(species: String, active: Int64, removed: Int64) {
            self.species = species
            self.active = active
            self.removed = removed
        }
    }

    public struct Day: Codable, Sendable, Equatable {
        public var day: String
        public var commands: Int64 = 0
        public var events: Int64 = 0
        public var rateLimitedRequests: Int64 = 0
        public var crossTenantAttempts: Int64 = 0

        var isEmpty: Bool { commands == 0 && events == 0 && rateLimitedRequests == 0 && crossTenantAttempts == 0 }

        mutating func add(_ other: Day) {
            commands += other.commands
            events += other.events
            rateLimitedRequests += other.rateLimitedRequests
            crossTenantAttempts += other.crossTenantAttempts
        }
    }

    public struct Overall: Codable, Sendable, Equatable {
        public var tenants: Int
        public var tenantsByPlan: [PlanCount]
        public var tenantsByStatus: [StatusCount]
        public var pets: Pets
        public var petsBySpecies: [Species]
        public var commands: Int64
        public var events: Int64
        public var rateLimitedRequests: Int64
        public var crossTenantAttempts: Int64
        /// Requests naming no known tenant; only in a report over every tenant.
        public var unknownTenantRequests: Int64?
        /// Every day of the range.
        public var daily: [Day]
    }

    public struct Tenant: Codable, Sendable, Equatable {
        public var id: String
        public var slug: String
        public var name: String
        public var plan: String
        public var status: String
        public var pets: Pets
        public var petsBySpecies: [Species]
        public var commands: Int64
        public var events: Int64
        public var rateLimitedRequests: Int64
        public var crossTenantAttempts: Int64
        /// Only the days with something to count.
        public var daily: [Day]
    }

    public var generatedAt: Date
    public var from: String
    public var to: String
    public var projection: Projection
    public var overall: Overall
    /// By slug.
    public var tenants: [Tenant]
}

public enum AnalyticsError: Error, Equatable, CustomStringConvertible, CustomDebugStringConvertible {
    case unknownTenant(String)
    case notInstalled

    public var description: String {
        switch self {
        case .unknownTenant(let slug): "No tenant has the slug \"\(slug.prefix(63))\"."
        case .notInstalled: "The analytics projection is not installed; run petstore migrate."
        }
    }

    public var debugDescription: String { "AnalyticsError: \(description)" }
}

extension AnalyticsReport {
    static let plans = ["free", "basic", "premium", "enterprise"]
    static let statuses = ["provisioning", "active", "suspended", "offboarding"]

    /// Reads the report over `range`, for every tenant or the one with slug `tenant`.
    public static func read(
        client: PostgresClient, range: AnalyticsRange, tenant slug: String? = nil, now: Date = Date(), logger: Logger
    ) async throws -> AnalyticsReport {
        guard let version = try await client.query(
            "SELECT version FROM projections WHERE name = 'analytics' AND state = 'active'", logger: logger
        ).decode(String.self).first(where: { _ in true }) else { throw AnalyticsError.notInstalled }

        var tenants: [Tenant] = []
        let rows = try await client.query("""
            SELECT id, slug, name, plan, status FROM tenants WHERE \(slug == nil) OR slug = \(slug ?? "") ORDER BY slug
            """, logger: logger)
        for try await (id, slug, name, plan, status) in rows.decode((UUID, String, String, String, String).self) {
            tenants.append(Tenant(id: id.uuidString.lowercased(), slug: slug, name: name, plan: plan, status: status, pets: Pets(),
                                  petsBySpecies: [], commands: 0, events: 0, rateLimitedRequests: 0, crossTenantAttempts: 0, daily: []))
        }
        if let slug, tenants.isEmpty { throw AnalyticsError.unknownTenant(slug) }
        let index = Dictionary(uniqueKeysWithValues: tenants.enumerated().map { ($1.id, $0) })
        // One tenant's report reads that tenant's rows only.
        let only = slug == nil ? nil : tenants.first.flatMap { UUID(uuidString: $0.id) }

        var behind = (tenants: 0, events: Int64(0))
        let positions = try await client.query(
            "SELECT tenant_id, applied_seq, head FROM projection_positions('analytics', \(version))", logger: logger)
        for try await (tenant, applied, head) in positions.decode((UUID, Int64, Int64).self) where applied < head {
            guard index[tenant.uuidString.lowercased()] != nil else { continue }
            behind.tenants += 1
            behind.events += head - applied
        }

        var overallSpecies: [String: Species] = [:]
        let species = try await client.query("""
            SELECT tenant_id, species, active, removed FROM analytics_species() WHERE \(only == nil) OR tenant_id = \(only)
            """, logger: logger)
        for try await (tenant, name, active, removed) in species.decode((UUID, String, Int64, Int64).self) {
            guard let at = index[tenant.uuidString.lowercased()] else { continue }
            tenants[at].petsBySpecies.append(Species(species: name, active: active, removed: removed))
            tenants[at].pets.active += active
            tenants[at].pets.removed += removed
            overallSpecies[name, default: Species(species: name, active: 0, removed: 0)].active += active
            overallSpecies[name, default: Species(species: name, active: 0, removed: 0)].removed += removed
        }

        var overallDays = Dictionary(uniqueKeysWithValues: range.days.map { ($0, Day(day: $0)) })
        let activity = try await client.query("""
            SELECT tenant_id, day::text, commands, events, rate_limited, cross_tenant
              FROM analytics_activity(\(range.from)::date, \(range.to)::date)
             WHERE \(only == nil) OR tenant_id = \(only) ORDER BY day
            """, logger: logger)
        for try await (tenant, day, commands, events, limited, attempts) in activity.decode((UUID, String, Int64, Int64, Int64, Int64).self) {
            guard let at = index[tenant.uuidString.lowercased()] else { continue }
            let counts = Day(day: day, commands: commands, events: events, rateLimitedRequests: limited, crossTenantAttempts: attempts)
            guard !counts.isEmpty else { continue }
            tenants[at].daily.append(counts)
            tenants[at].commands += commands
            tenants[at].events += events
            tenants[at].rateLimitedRequests += limited
            tenants[at].crossTenantAttempts += attempts
            overallDays[day]?.add(counts)
        }

        var unknown: Int64?
        if slug == nil {
            unknown = 0
            let rows = try await client.query(
                "SELECT attempts FROM analytics_unknown_tenant(\(range.from)::date, \(range.to)::date)", logger: logger)
            for try await attempts in rows.decode(Int64.self) { unknown? += attempts }
        }

        for at in tenants.indices { tenants[at].petsBySpecies.sort(by: Self.bySize) }
        let daily = range.days.compactMap { overallDays[$0] }
        let overall = Overall(
            tenants: tenants.count,
            tenantsByPlan: plans.map { plan in PlanCount(plan: plan, tenants: tenants.count(where: { $0.plan == plan })) },
            tenantsByStatus: statuses.map { status in StatusCount(status: status, tenants: tenants.count(where: { $0.status == status })) },
            pets: Pets(active: tenants.reduce(0) { $0 + $1.pets.active }, removed: tenants.reduce(0) { $0 + $1.pets.removed }),
            petsBySpecies: overallSpecies.values.sorted(by: Self.bySize),
            commands: daily.reduce(0) { $0 + $1.commands }, events: daily.reduce(0) { $0 + $1.events },
            rateLimitedRequests: daily.reduce(0) { $0 + $1.rateLimitedRequests },
            crossTenantAttempts: daily.reduce(0) { $0 + $1.crossTenantAttempts },
            unknownTenantRequests: unknown, daily: daily
        )
        return AnalyticsReport(
            generatedAt: now, from: range.from, to: range.to,
            projection: Projection(version: version, tenantsBehind: behind.tenants, eventsBehind: behind.events),
            overall: overall, tenants: tenants
        )
    }

    /// Most active pets first, then by name, so the order is stable.
    static func bySize(_ a: Species, _ b: Species) -> Bool {
        a.active != b.active ? a.active > b.active : (a.removed != b.removed ? a.removed > b.removed : a.species < b.species)
    }
}
