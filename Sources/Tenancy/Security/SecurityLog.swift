import Database
import EventLog
import Foundation
import Logging
import PostgresNIO
import ServiceLifecycle
import Synchronization

/// Recorded in the target tenant's own log when a key of another tenant reached for its data.
public struct CrossTenantAccessAttempted: EventPayload, Equatable {
    public static let eventType = "CrossTenantAccessAttempted"
    public static let schemaVersion = 1

    public let actorTenant: String?
    public let actorUser: String?
    public let actorKey: String
    public let targetTenant: String
    public let method: String
    public let route: String
    public let clientAddress: String?
    public let requestId: String
    public let at: Date
}

/// Records cross-tenant attempts and requests for unknown tenants off the response path.
///
/// `record` only adds to an in-memory table keyed by (kind, actor key, target, method, route,
/// minute), so a flood of repeats costs one counter increment each. The service flushes that
/// table every `interval`: one `security_events` row per key and window (its `attempts` counting
/// the repeats) and, for the first attempt of a window against a known tenant, one
/// `CrossTenantAccessAttempted` event in that tenant's log. A failed flush keeps its entries for
/// the next one; graceful shutdown flushes what is left. Only a process killed outright can lose
/// the entries of its last `interval`.
public final class SecurityLog: FlushingService, Sendable {
    public enum Kind: String, Sendable { case crossTenant = "cross_tenant", unknownTenant = "unknown_tenant" }

    public struct Attempt: Sendable {
        public let kind: Kind
        public let actor: Principal?
        public let targetTenant: TenantID?
        public let targetSlug: String?
        public let method: String
        public let route: String
        public let clientAddress: String?
        public let requestID: String
        public let at: Date

        public init(kind: Kind, actor: Principal?, targetTenant: TenantID?, targetSlug: String?, method: String, route: String,
                    clientAddress: String?, requestID: String, at: Date = Date()) {
            self.kind = kind
            self.actor = actor
            self.targetTenant = targetTenant
            self.targetSlug = targetSlug
            self.method = method
            self.route = route
            self.clientAddress = clientAddress
            self.requestID = requestID
            self.at = at
        }
    }

    struct Key: Hashable {
        let kind: Kind
        let window: Int64
        let actorKey: UUID?
        let targetTenant: TenantID?
        let targetSlug: String?
        let method: String
        let route: String
    }

    struct Pending {
        var first: Attempt
        var last: Date
        var count: Int
    }

    let client: PostgresClient
    let store: EventStore
    public let interval: Duration
    public let flushes = FlushQueue()
    public let logger: Logger
    private let pending = Mutex<[Key: Pending]>([:])
    private let step = Mutex("")

    public init(client: PostgresClient, store: EventStore, interval: Duration = .milliseconds(50), logger: Logger) {
        self.client = client
        self.store = store
        self.interval = interval
        self.logger = logger
    }

    /// Attempts recorded and not yet written (a gauge for operators, and for tests).
    public var pendingAttempts: Int {
        pending.withLock { $0.values.reduce(0) { $0 + $1.count } }
    }

    /// What the flush in progress is waiting for, empty between flushes: named in the report of
    /// a shutdown that does not finish.
    public var activity: String { step.withLock { $0 } }

    /// Adds an attempt; never waits for the database.
    public func record(_ attempt: Attempt) {
        let key = Key(
            kind: attempt.kind, window: Int64(attempt.at.timeIntervalSince1970) / 60, actorKey: attempt.actor?.keyID,
            targetTenant: attempt.targetTenant, targetSlug: attempt.targetTenant == nil ? attempt.targetSlug : nil,
            method: attempt.method, route: attempt.route
        )
        pending.withLock { pending in
            if var entry = pending[key] {
                entry.count += 1
                entry.last = attempt.at
                pending[key] = entry
            } else {
                pending[key] = Pending(first: attempt, last: attempt.at, count: 1)
            }
        }
    }

    /// Writes everything recorded so far. Entries that fail to write are kept for the next call.
    public func writePending() async {
        let batch = pending.withLock { pending in
            let taken = pending
            pending.removeAll()
            return taken
        }
        defer { step.withLock { $0 = "" } }
        for (key, entry) in batch {
            do {
                try await write(key: key, entry: entry)
            } catch {
                logger.warning("security event not written yet; will retry", metadata: ["error": "\(DatabaseURL.describe(error))"])
                pending.withLock { pending in
                    if var newer = pending[key] {
                        newer.count += entry.count
                        newer.first = entry.first
                        pending[key] = newer
                    } else {
                        pending[key] = entry
                    }
                }
            }
        }
    }

    private func write(key: Key, entry: Pending) async throws {
        let attempt = entry.first
        let windowStart = Date(timeIntervalSince1970: TimeInterval(key.window * 60))
        let upsert: PostgresQuery = """
            INSERT INTO security_events (kind, window_start, first_seen, last_seen, attempts, actor_tenant, actor_user, actor_key,
                                         target_tenant, target_slug, method, route, client_address, request_id)
            VALUES (\(key.kind.rawValue), \(windowStart), \(attempt.at), \(entry.last), \(entry.count), \(attempt.actor?.tenant),
                    \(attempt.actor?.userID), \(key.actorKey), \(key.targetTenant), \(key.targetSlug), \(key.method), \(key.route),
                    \(attempt.clientAddress), \(attempt.requestID))
            ON CONFLICT (kind, window_start, actor_key, target_tenant, target_slug, method, route) DO UPDATE
              SET attempts = security_events.attempts + EXCLUDED.attempts, last_seen = EXCLUDED.last_seen
            RETURNING xmax = 0
            """
        guard let target = key.targetTenant else {
            step.withLock { $0 = "writing an unknown tenant's row" }
            try await client.query(upsert, logger: logger).consume()
            return
        }
        // The row and the tenant's event commit together, so a retry after a failure can neither
        // skip the event (row already there) nor write it twice.
        step.withLock { $0 = "looking up the home of tenant \(target)" }
        let ownDatabase = try await store.database.home(of: target).placement == .database
        step.withLock { $0 = "entering tenant \(target)" }
        try await store.database.withTenant(target) { session in
            step.withLock { $0 = "writing tenant \(target)'s row" }
            let inserted = try await session.query(upsert).decode(Bool.self).first(where: { _ in true }) ?? false
            guard inserted, key.kind == .crossTenant, let actor = attempt.actor else { return }
            let event = try NewEvent(CrossTenantAccessAttempted(
                actorTenant: actor.tenant?.description, actorUser: actor.userID?.uuidString.lowercased(),
                actorKey: actor.keyID.uuidString.lowercased(), targetTenant: target.description, method: attempt.method,
                route: attempt.route, clientAddress: attempt.clientAddress, requestId: attempt.requestID, at: attempt.at
            ))
            step.withLock { $0 = "appending to tenant \(target)'s log" }
            _ = try await store.append(
                [StreamAppend(stream: try StreamName(type: "security", id: target.rawValue), expected: .any, events: [event])],
                metadata: EventMetadata(actor: actor.actor, requestID: attempt.requestID), in: session
            )
            step.withLock { $0 = "committing tenant \(target)'s row and event" }
        }
        // A tenant in a database of its own keeps its row there, with its event; the platform's
        // security log in the main database gets a copy once that committed. A failure here costs
        // the platform's view a count (retrying would count twice in the tenant's), never the record.
        if ownDatabase {
            step.withLock { $0 = "copying tenant \(target)'s row to the platform's log" }
            do {
                try await client.query(upsert, logger: logger).consume()
            } catch {
                logger.warning("a security event's platform copy was not written", metadata: ["error": "\(DatabaseURL.describe(error))"])
            }
        }
    }
}
