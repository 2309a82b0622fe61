import Foundation
import Logging
import PostgresNIO
import Synchronization

/// Where one tenant's data lives, as its sessions need it: which server, and for a tenant with
/// a schema of its own, which schemas.
public struct TenantHome: Sendable, Equatable {
    public enum Placement: String, Sendable, CaseIterable {
        case shared, schema, database
    }

    public let placement: Placement
    /// The registered server's name; `main` is the server of `DATABASE_URL`.
    public let server: String
    /// The schema (or database) of its own; nil for the shared placement.
    public let location: String?
    /// Per-tenant projection versions being served that the tenant has no copy of yet
    /// (`name:version`): non-empty means the tenant is behind this build and is not served.
    public let missing: [String]
    /// Whether the tenant is in service (not onboarding): only then is being behind refused.
    public let inService: Bool
    /// For a tenant with a database of its own: the builds (fingerprints) its ledger records
    /// that database as brought to.
    public let builds: [String]

    /// Whether the catalog knows the tenant. One it does not (a tenant being created, whose
    /// catalog row its first unit of work writes) is shared and is not fenced.
    public var known = true

    public static let shared = TenantHome(placement: .shared, server: "main", location: nil, missing: [], inService: true)

    /// The home of a tenant the catalog does not know.
    static var unknown: TenantHome {
        var home = TenantHome.shared
        home.known = false
        return home
    }

    public init(placement: Placement, server: String, location: String?, missing: [String], inService: Bool, builds: [String] = []) {
        self.placement = placement
        self.server = server
        self.location = location
        self.missing = missing
        self.inService = inService
        self.builds = builds
    }

    /// What this tenant lacks to be served by `build` (a build's fingerprint; nil checks only
    /// projection copies): empty when nothing.
    public func lacks(build: String?) -> [String] {
        guard placement == .database, let build, !builds.contains(build) else { return missing }
        return missing + ["its database brought to this build"]
    }

    /// What a session records of the home it entered (`petstore.home`): appends from a session
    /// whose home is no longer the tenant's are refused (Schema/0018_tenant_moves.sql).
    package var fence: String { known ? "\(placement.rawValue):\(location ?? "")" : "" }

    /// The search path of the tenant's sessions; nil keeps the server's default (the shared
    /// tables). A schema tenant's own schema comes first, so the read models' unqualified names
    /// are its views; the log and the functions stay in `public`.
    package var searchPath: String? {
        guard placement == .schema, let location else { return nil }
        return "\(location), public"
    }

    /// The schema holding this tenant's rows of a projection version whose shared tables are in
    /// `shared`: its own copy for a schema tenant and a per-tenant projection, else the shared one.
    public func projectionSchema(shared: String, version: String, perTenant: Bool) -> String {
        guard perTenant, placement == .schema, let location else { return shared }
        return "\(location)_\(version)"
    }
}

/// Finds tenants' homes in the catalog (`tenant_home(…)`, Schema/0011_placements.sql), on the
/// connection about to serve the tenant, and remembers them for a short while: a request for a
/// tenant seen in the last `ttl` costs no lookup. A tenant the catalog does not know is shared
/// (the log's own tests, and a tenant being created) and is not remembered.
final class TenantHomes: Sendable {
    private let ttl: Duration
    private let known = Mutex<[TenantID: (home: TenantHome, expires: ContinuousClock.Instant)]>([:])

    init(ttl: Duration) {
        self.ttl = ttl
    }

    func home(of tenant: TenantID, on connection: PostgresConnection, logger: Logger) async throws -> TenantHome {
        let now = ContinuousClock.now
        if let cached = known.withLock({ $0[tenant] }), cached.expires > now { return cached.home }
        let rows = try await connection.query(
            "SELECT placement, server, location, status, missing, builds FROM tenant_home(\(tenant))", logger: logger)
        for try await (placement, server, location, status, missing, builds) in rows.decode((String, String, String?, String, [String], [String]).self) {
            let home = TenantHome(placement: TenantHome.Placement(rawValue: placement) ?? .shared, server: server,
                                  location: location, missing: missing, inService: status != "provisioning", builds: builds)
            known.withLock { known in
                if known.count > 100_000 { known.removeAll(keepingCapacity: true) }
                known[tenant] = (home, now + ttl)
            }
            return home
        }
        return .unknown
    }

    /// What is known of a tenant's home, if it has not expired.
    func cached(_ tenant: TenantID) -> TenantHome? {
        guard let cached = known.withLock({ $0[tenant] }), cached.expires > ContinuousClock.now else { return nil }
        return cached.home
    }

    /// Forgets what is known of one tenant (all when nil), after changing where it lives.
    func forget(_ tenant: TenantID?) {
        known.withLock { known in
            if let tenant { known[tenant] = nil } else { known.removeAll() }
        }
    }
}
