import Database
import Domain
import EventLog
import Foundation
import Logging
import PostgresNIO
import Synchronization
import Tenancy

/// Moves a tenant between the shared tables and a schema of its own while it serves
/// (Schema/0018_tenant_moves.sql holds the steps' SQL and says what each does).
///
/// The log is copied in seq order while the tenant keeps writing; then one transaction locks
/// the tenant's head row (its commands wait on it, they are not refused), copies the tail,
/// checks the copy against the head (seq, hash and every link), copies the read models and
/// switches the catalog. Commands that waited are refused by the fence once it commits and run
/// again in the new home (`TenantDatabase.withTenant`); reads go on from the source's read
/// models, kept until every server has heard of the switch (`grace`), then removed.
///
/// Every step is recorded in `tenant_moves` with its effect, so a move stopped anywhere (a
/// crash, `kill -9`) leaves the tenant serving from wherever the catalog says, with nothing
/// lost, and running it again resumes: it copies on from where the copy ends, or switches, or
/// cleans up. `abort` gives up a move that has not switched.
public struct TenantMove: Sendable {
    public enum Phase: String, Sendable, CaseIterable {
        case prepare, copy
        /// Inside the switch's transaction, its work done, before its commit.
        case commit = "switch"
        case cleanup
    }

    /// What a finished move did.
    public struct Report: Sendable {
        public let slug: String
        public let from: Placement
        public let to: Placement
        /// The head of the log the target was checked against.
        public let lastSeq: Int64
        public let headHash: String
        /// Events copied while the tenant was writing, and in the pause.
        public let copiedOnline: Int64
        public let copiedInPause: Int64
        public let readModelRows: Int64
        /// How long the switch's transaction held the tenant's writes.
        public let pause: Duration
    }

    let catalog: Catalog
    let owner: DatabaseURL
    let logger: Logger
    /// How long the source's read models are kept after the switch.
    let grace: Duration
    /// Events copied per transaction while the tenant writes.
    let batch: Int
    /// How long the switch waits for the tenant's head row (a command holding it) before giving up.
    let lockWait: Duration
    let progress: @Sendable (String) -> Void
    /// For tests: called as each phase begins; throwing stops the move there, as a crash would.
    let beforePhase: @Sendable (Phase) async throws -> Void

    public init(catalog: Catalog, owner: DatabaseURL, logger: Logger, grace: Duration = .seconds(5), batch: Int = 2_000,
                lockWait: Duration = .seconds(5), progress: @escaping @Sendable (String) -> Void = { _ in },
                beforePhase: @escaping @Sendable (Phase) async throws -> Void = { _ in }) {
        self.catalog = catalog
        self.owner = owner
        self.logger = logger
        self.grace = grace
        self.batch = batch
        self.lockWait = lockWait
        self.progress = progress
        self.beforePhase = beforePhase
    }

    /// Moves the tenant with `slug` to `target`, or finishes its move under way there. Nil when
    /// it is there already with no move to finish.
    public func move(slug: String, to target: Placement) async throws -> Report? {
        guard let record = try await catalog.tenant(slug: slug) else { throw TenancyError(.notFound, "no tenant with slug '\(slug)'") }
        guard record.plan.allowedPlacements.contains(target) || record.placement == target else {
            throw TenancyError(.invalid, "the \(record.plan.rawValue) plan may use \(record.plan.allowedPlacements.map(\.rawValue).joined(separator: " or ")): change the plan first",
                               fieldErrors: [.init(field: "to", message: "is not a placement of the tenant's plan")])
        }
        try await beforePhase(.prepare)
        guard try await inTenant(record.id, { connection in
            try await connection.query("SELECT move_prepare(\(record.id), \(target.rawValue))", logger: logger).decode(Int64?.self)
                .first(where: { _ in true }) ?? nil
        }) != nil else { return nil }
        var move = try await openMove(record.id)
        var copiedOnline: Int64 = 0
        var switched: SwitchResult?
        if move?.phase == "copying" {
            try await beforePhase(.copy)
            if target == .schema { copiedOnline = try await copyOnline(record) }
            switched = try await switchOver(record)
            catalog.forget(tenant: record.id)
            catalog.store.database.forgetHome(of: record.id)
            progress("switched \(slug) to \(target.rawValue) at seq \(switched!.lastSeq); writes waited \(Self.format(switched!.pause))")
            move = try await openMove(record.id)
        }
        guard let move, move.phase == "switched" else { throw TenancyError(.conflict, "the move of \(slug) did not switch") }
        try await beforePhase(.cleanup)
        let since = ContinuousClock.now - .seconds(move.secondsSinceSwitch)
        if since + grace > .now {
            progress("keeping the source's read models \(Self.format(since + grace - .now)) for servers that have not heard yet")
            try await Task.sleep(until: since + grace)
        }
        _ = try await inTenant(record.id) { connection in
            try await connection.query("SELECT move_cleanup(\(record.id))", logger: logger).consume()
        }
        progress("removed \(slug)'s copy in \(move.from)")
        return Report(slug: slug, from: Placement(rawValue: move.from) ?? .shared, to: target, lastSeq: move.lastSeq ?? 0,
                      headHash: move.headHash, copiedOnline: copiedOnline, copiedInPause: switched?.tail ?? 0,
                      readModelRows: switched?.rows ?? 0, pause: switched?.pause ?? .zero)
    }

    /// Gives up the tenant's move if it has not switched: the target's tables are dropped.
    /// False when there was none to give up.
    public func abort(slug: String) async throws -> Bool {
        guard let record = try await catalog.tenant(slug: slug) else { throw TenancyError(.notFound, "no tenant with slug '\(slug)'") }
        return try await inTenant(record.id) { connection in
            try await connection.query("SELECT move_abort(\(record.id))", logger: logger).decode(Int64?.self).first(where: { _ in true }) ?? nil
        } != nil
    }

    // MARK: - Steps

    struct OpenMove: Sendable {
        let from: String
        let phase: String
        let lastSeq: Int64?
        let headHash: String
        let secondsSinceSwitch: Double
    }

    private func openMove(_ tenant: TenantID) async throws -> OpenMove? {
        try await inTenant(tenant) { connection in
            let rows = try await connection.query("""
                SELECT from_placement, phase, last_seq, encode(coalesce(head_hash, ''::bytea), 'hex'),
                       coalesce(extract(epoch FROM clock_timestamp() - switched_at), 0)::float8
                  FROM tenant_moves WHERE tenant_id = \(tenant) AND phase <> 'done'
                """, logger: logger)
            for try await (from, phase, seq, hash, since) in rows.decode((String, String, Int64?, String, Double).self) {
                return OpenMove(from: from, phase: phase, lastSeq: seq, headHash: hash, secondsSinceSwitch: since)
            }
            return nil
        }
    }

    /// Copies the log into the target in batches until what is left fits in one: the pause
    /// then copies only that. Returns the events copied.
    private func copyOnline(_ record: TenantRecord) async throws -> Int64 {
        var copied: Int64 = 0
        var last: Int64 = -1
        while true {
            let (reached, head) = try await inTenant(record.id) { connection in
                let reached = try await connection.query("SELECT move_copy_events(\(record.id), \(batch))", logger: logger)
                    .decode(Int64.self).first(where: { _ in true }) ?? 0
                let head = try await connection.query("SELECT last_seq FROM event_heads WHERE tenant_id = \(record.id)", logger: logger)
                    .decode(Int64.self).first(where: { _ in true }) ?? 0
                return (reached, head)
            }
            if last >= 0 { copied += reached - last } else { copied = reached }
            progress("copied \(reached) of \(head) events")
            if head - reached <= Int64(batch) || reached == last { return copied }
            last = reached
        }
    }

    struct SwitchResult: Decodable {
        let lastSeq: Int64
        let tail: Int64
        let rows: Int64
        var pause: Duration = .zero

        enum CodingKeys: String, CodingKey {
            case lastSeq = "last_seq", tail = "tail_events", rows = "read_model_rows"
        }
    }

    private func switchOver(_ record: TenantRecord) async throws -> SwitchResult {
        let wait = Int(lockWait.components.seconds * 1000 + lockWait.components.attoseconds / 1_000_000_000_000_000)
        // The pause runs from the switch's first statement (which waits for the head row and then
        // holds it) to its commit.
        let started = Mutex(ContinuousClock.now)
        let text = try await inTenant(record.id) { connection in
            try await connection.query("SELECT set_config('lock_timeout', \(String(wait)), true)", logger: logger).consume()
            started.withLock { $0 = .now }
            let text = try await connection.query("SELECT move_switch(\(record.id))::text", logger: logger)
                .decode(String.self).first(where: { _ in true }) ?? "{}"
            try await beforePhase(.commit)
            return text
        }
        var result = try JSONDecoder().decode(SwitchResult.self, from: Data(text.utf8))
        result.pause = ContinuousClock.now - started.withLock { $0 }
        return result
    }

    /// A transaction of the owner's in the tenant, on the main database.
    private func inTenant<Result: Sendable>(_ tenant: TenantID, _ body: @escaping @Sendable (PostgresConnection) async throws -> Result) async throws -> Result {
        do {
            return try await owner.withConnection(logger: logger) { connection in
                try await connection.withTransaction(logger: logger) { connection in
                    try await TenantDatabase.enter(tenant, inOwnerTransaction: connection, logger: logger)
                    return try await body(connection)
                }
            }
        } catch let error as PostgresTransactionError {
            // The body's own error as it was thrown, a refusal in the tenancy's terms, or the
            // transaction's failure itself.
            if let thrown = error.closureError { throw Self.refusal(thrown) ?? thrown }
            throw error
        } catch {
            throw Self.refusal(error) ?? error
        }
    }

    /// A step's refusal (SQLSTATE PT409: another move under way, a tenant not in service or
    /// behind; PT422: a placement not moved between) as the tenancy error it stands for.
    static func refusal(_ error: any Error) -> TenancyError? {
        if let error = error as? PostgresTransactionError, let inner = error.closureError { return refusal(inner) }
        guard let error = error as? PSQLError, let state = error.serverInfo?[.sqlState] else { return nil }
        let message = error.serverInfo?[.message] ?? "the move was refused"
        switch state {
        case "PT409": return TenancyError(.conflict, message)
        case "PT422": return TenancyError(.invalid, message)
        default: return nil
        }
    }

    public static func format(_ duration: Duration) -> String {
        let ms = Double(duration.components.seconds) * 1000 + Double(duration.components.attoseconds) / 1e15
        return ms < 1000 ? String(format: "%.1f ms", ms) : String(format: "%.2f s", ms / 1000)
    }
}
