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
    /// The way to registered servers, for moves into and out of a database of its own.
    let homePools: HomePools?
    let logger: Logger
    /// How long the source's copy is kept after the switch.
    let grace: Duration
    /// Events copied per transaction while the tenant writes.
    let batch: Int
    /// How long the switch waits for the tenant's head row (a command holding it) before giving up.
    let lockWait: Duration
    let progress: @Sendable (String) -> Void
    /// For tests: called as each phase begins; throwing stops the move there, as a crash would.
    let beforePhase: @Sendable (Phase) async throws -> Void

    public init(catalog: Catalog, owner: DatabaseURL, homePools: HomePools? = nil, logger: Logger, grace: Duration = .seconds(5),
                batch: Int = 2_000, lockWait: Duration = .seconds(5), progress: @escaping @Sendable (String) -> Void = { _ in },
                beforePhase: @escaping @Sendable (Phase) async throws -> Void = { _ in }) {
        self.catalog = catalog
        self.owner = owner
        self.homePools = homePools
        self.logger = logger
        self.grace = grace
        self.batch = batch
        self.lockWait = lockWait
        self.progress = progress
        self.beforePhase = beforePhase
    }

    /// Moves the tenant with `slug` to `target` (for a database of its own, on `server`, main by
    /// default), or finishes its move under way there. Nil when it is there already with no move
    /// to finish.
    public func move(slug: String, to target: Placement, server: String? = nil) async throws -> Report? {
        guard let record = try await catalog.tenant(slug: slug) else { throw TenancyError(.notFound, "no tenant with slug '\(slug)'") }
        guard record.plan.allowedPlacements.contains(target) || record.placement == target else {
            throw TenancyError(.invalid, "the \(record.plan.rawValue) plan may use \(record.plan.allowedPlacements.map(\.rawValue).joined(separator: " or ")): change the plan first",
                               fieldErrors: [.init(field: "to", message: "is not a placement of the tenant's plan")])
        }
        if server != nil && target != .database {
            throw TenancyError(.invalid, "only a database of its own is on a server of its choosing", fieldErrors: [.init(field: "server", message: "needs to: database")])
        }
        try await beforePhase(.prepare)
        let server = target == .database ? server ?? "main" : "main"
        guard try await inTenant(record.id, { connection in
            try await connection.query("SELECT move_prepare(\(record.id), \(target.rawValue), \(server))", logger: logger).decode(Int64?.self)
                .first(where: { _ in true }) ?? nil
        }) != nil else { return nil }
        guard var move = try await openMove(record.id) else { throw TenancyError(.conflict, "the move of \(slug) was not recorded") }
        var copiedOnline: Int64 = 0
        var switched: SwitchResult?
        if move.phase == "copying" || move.phase == "frozen" {
            if move.phase == "copying" {
                if move.to == "database" { try await makeTarget(move) }
                try await beforePhase(.copy)
                if move.crossesDatabases {
                    copiedOnline = try await copyAcross(record, move)
                } else if target == .schema {
                    copiedOnline = try await copyOnline(record)
                }
            }
            switched = move.crossesDatabases ? try await switchAcross(record, move) : try await switchOver(record)
            catalog.forget(tenant: record.id)
            catalog.store.database.forgetHome(of: record.id)
            progress("switched \(slug) to \(move.to) at seq \(switched!.lastSeq); writes waited \(Self.format(switched!.pause))")
            guard let reread = try await openMove(record.id) else { throw TenancyError(.conflict, "the move of \(slug) was not found after its switch") }
            move = reread
        }
        guard move.phase == "switched" else { throw TenancyError(.conflict, "the move of \(slug) did not switch") }
        try await beforePhase(.cleanup)
        let since = ContinuousClock.now - .seconds(move.secondsSinceSwitch)
        if since + grace > .now {
            progress("keeping the source's copy \(Self.format(since + grace - .now)) for servers that have not heard yet")
            try await Task.sleep(until: since + grace)
        }
        if move.crossesDatabases {
            try await removeSource(record, move)
        } else {
            _ = try await inTenant(record.id) { connection in
                try await connection.query("SELECT move_cleanup(\(record.id))", logger: logger).consume()
            }
        }
        progress("removed \(slug)'s copy in \(move.from)\(move.fromServer.map { " on \($0)" } ?? "")")
        return Report(slug: slug, from: Placement(rawValue: move.from) ?? .shared, to: target, lastSeq: move.lastSeq ?? 0,
                      headHash: move.headHash, copiedOnline: copiedOnline, copiedInPause: switched?.tail ?? 0,
                      readModelRows: switched?.rows ?? 0, pause: switched?.pause ?? .zero)
    }

    /// Gives up the tenant's move if it has not switched: the target's copy is dropped and a
    /// frozen source thawed. False when there was none to give up.
    public func abort(slug: String) async throws -> Bool {
        guard let record = try await catalog.tenant(slug: slug) else { throw TenancyError(.notFound, "no tenant with slug '\(slug)'") }
        guard let move = try await openMove(record.id), move.phase == "copying" || move.phase == "frozen" else { return false }
        if move.crossesDatabases {
            if move.from == "database" {
                try await inTenant(record.id, at: try await home(move.fromServer, move.fromLocation)) { connection in
                    try await connection.query("""
                        UPDATE tenants SET location = regexp_replace(location, '@moving$', '') WHERE id = \(record.id)
                        """, logger: logger).consume()
                }
            }
            if move.to == "database", let server = move.toServer, let name = move.toLocation {
                try await dropDatabase(name, on: server)
            }
            return try await inTenant(record.id) { connection in
                try await connection.query("DELETE FROM tenant_moves WHERE tenant_id = \(record.id) AND phase IN ('copying', 'frozen') RETURNING id",
                                           logger: logger).decode(Int64.self).first(where: { _ in true })
            } != nil
        }
        return try await inTenant(record.id) { connection in
            try await connection.query("SELECT move_abort(\(record.id))", logger: logger).decode(Int64?.self).first(where: { _ in true }) ?? nil
        } != nil
    }

    // MARK: - Steps

    struct OpenMove: Sendable {
        let from: String
        let to: String
        let phase: String
        let lastSeq: Int64?
        let headHash: String
        let secondsSinceSwitch: Double
        let fromServer: String?
        let fromLocation: String?
        let toServer: String?
        let toLocation: String?

        /// Whether the log goes from one database to another (into or out of one of its own).
        var crossesDatabases: Bool { from == "database" || to == "database" }
    }

    private func openMove(_ tenant: TenantID) async throws -> OpenMove? {
        try await inTenant(tenant) { connection in
            let rows = try await connection.query("""
                SELECT from_placement, to_placement, phase, last_seq, encode(coalesce(head_hash, ''::bytea), 'hex'),
                       coalesce(extract(epoch FROM clock_timestamp() - switched_at), 0)::float8,
                       from_server, from_location, to_server, to_location
                  FROM tenant_moves WHERE tenant_id = \(tenant) AND phase <> 'done'
                """, logger: logger)
            for try await row in rows.decode((String, String, String, Int64?, String, Double, String?, String?, String?, String?).self) {
                return OpenMove(from: row.0, to: row.1, phase: row.2, lastSeq: row.3, headHash: row.4, secondsSinceSwitch: row.5,
                                fromServer: row.6, fromLocation: row.7, toServer: row.8, toLocation: row.9)
            }
            return nil
        }
    }

    /// Copies the log into the target in batches until what is left fits in one: the pause
    /// then copies only that. Returns the events copied.
    private func copyOnline(_ record: TenantRecord) async throws -> Int64 {
        var copied: Int64 = 0
        var last: Int64 = -1
        var rounds = 0
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
            rounds += 1
            if Self.caughtUp(head: head, reached: reached, rounds: rounds) || reached == last { return copied }
            last = reached
        }
    }

    /// Whether the copy made while the tenant writes is close enough to its head for the pause
    /// to copy the rest: within a few events, or after enough rounds that a writer faster than
    /// the copy is not chased for good.
    static func caughtUp(head: Int64, reached: Int64, rounds: Int) -> Bool {
        head - reached <= 100 || rounds >= 50
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

    /// A transaction of the owner's in the tenant, on the main database (or the one `url` reaches).
    private func inTenant<Result: Sendable>(_ tenant: TenantID, at url: DatabaseURL? = nil,
                                            _ body: @escaping @Sendable (PostgresConnection) async throws -> Result) async throws -> Result {
        do {
            return try await (url ?? owner).withConnection(logger: logger) { connection in
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

// MARK: - Into and out of a database of its own

extension TenantMove {
    /// The login of a tenant's database of its own.
    func home(_ server: String?, _ location: String?) async throws -> DatabaseURL {
        guard let homePools, let server, let location else {
            throw TenancyError(.unavailable, "databases of their own are not reachable from this process")
        }
        return try await homePools.url(of: server).with(database: location)
    }

    /// The main database, or the tenant's database of its own, as the move names it.
    func database(_ placement: String, _ server: String?, _ location: String?) async throws -> DatabaseURL {
        placement == "database" ? try await home(server, location) : owner
    }

    /// Makes the target database (from its server's template), or finds it made.
    func makeTarget(_ move: OpenMove) async throws {
        guard let homePools, let server = move.toServer, let name = move.toLocation else {
            throw TenancyError(.unavailable, "databases of their own are not reachable from this process")
        }
        progress("making database \(name) on \(server)")
        try await HomeDatabases.ensure(name, on: try await homePools.url(of: server), logger: logger)
        await homePools.reinstate(server: server, database: name)
    }

    /// Copies the log from the database holding it into the target's, in batches, until what is
    /// left fits in one. Returns the events copied.
    func copyAcross(_ record: TenantRecord, _ move: OpenMove) async throws -> Int64 {
        let source = try await database(move.from, move.fromServer, move.fromLocation)
        let target = try await database(move.to, move.toServer, move.toLocation)
        let tenant = record.id
        var reached = try await inTenant(tenant, at: target) { connection in
            try await connection.query("SELECT coalesce(max(seq), 0) FROM events WHERE tenant_id = \(tenant)", logger: logger)
                .decode(Int64.self).first(where: { _ in true }) ?? 0
        }
        let first = reached
        var rounds = 0
        while true {
            let (rows, head) = try await inTenant(tenant, at: source) { [batch, reached] connection in
                let rows = try await connection.query("SELECT move_export_events(\(tenant), \(reached), \(Int64(batch)))", logger: logger)
                    .decode(String.self).first(where: { _ in true }) ?? "[]"
                let head = try await connection.query("SELECT last_seq FROM event_heads WHERE tenant_id = \(tenant)", logger: logger)
                    .decode(Int64.self).first(where: { _ in true }) ?? 0
                return (rows, head)
            }
            let before = reached
            if rows != "[]" {
                reached = try await inTenant(tenant, at: target) { connection in
                    try await connection.query("SELECT move_import_events(\(tenant), \(rows))", logger: logger)
                        .decode(Int64.self).first(where: { _ in true }) ?? 0
                }
            }
            progress("copied \(reached) of \(head) events")
            rounds += 1
            if Self.caughtUp(head: head, reached: reached, rounds: rounds) || reached == before { return reached - first }
        }
    }

    /// The switch across databases. Into a database of its own: one transaction of the main
    /// database holds the head row while the target's copy is finished, checked and committed,
    /// then switches the catalog. Out of one: the source is frozen (its record's location changes,
    /// which the fence refuses every append for), then one transaction of the main database copies
    /// the tail and the rest, checks the log and switches.
    func switchAcross(_ record: TenantRecord, _ move: OpenMove) async throws -> SwitchResult {
        let tenant = record.id
        let fingerprint = try HomeDatabases.fingerprint
        let wait = String(Int(lockWait.components.seconds * 1000 + lockWait.components.attoseconds / 1_000_000_000_000_000))
        let started = Mutex(ContinuousClock.now)
        let result: SwitchResult
        if move.from != "database" {
            let target = try await home(move.toServer, move.toLocation)
            result = try await inTenant(tenant) { [self] main in
                try await main.query("SELECT set_config('lock_timeout', \(wait), true)", logger: logger).consume()
                started.withLock { $0 = .now }
                let (seq, hash) = try await Self.lockHead(tenant, on: main, logger: logger)
                try await main.query("""
                    SELECT pg_advisory_xact_lock(hashtextextended(p.name || '/' || p.version || '/' || \(tenant.description), 0))
                      FROM projections p ORDER BY p.name, p.version
                    """, logger: logger).consume()
                let catalogRow = try await main.query("""
                    SELECT slug, name, plan, status, created_at, updated_at, removal_scheduled_at FROM tenants WHERE id = \(tenant)
                    """, logger: logger).decode((String, String, String, String, Date, Date, Date?).self).first(where: { _ in true })
                guard let row = catalogRow else { throw TenancyError(.notFound, "tenant \(tenant) left the catalog") }
                let home = try await main.query("SELECT move_export_home(\(tenant))", logger: logger).decode(String.self).first(where: { _ in true }) ?? "{}"
                let (tail, rows) = try await inTenant(tenant, at: target) { [self] own in
                    // The record of a tenant in a database of its own is kept there, with its log.
                    try await own.query("""
                        INSERT INTO tenants (id, slug, name, plan, status, placement, location, created_at, updated_at, removal_scheduled_at)
                        VALUES (\(tenant), \(row.0), \(row.1), \(row.2), \(row.3), 'database', \(move.toLocation), \(row.4), \(row.5), \(row.6))
                        ON CONFLICT (id) DO UPDATE SET slug = EXCLUDED.slug, name = EXCLUDED.name, plan = EXCLUDED.plan, status = EXCLUDED.status,
                               placement = EXCLUDED.placement, location = EXCLUDED.location, updated_at = EXCLUDED.updated_at,
                               removal_scheduled_at = EXCLUDED.removal_scheduled_at
                        """, logger: logger).consume()
                    let tail = try await Self.copyTail(tenant, from: main, to: own, batch: batch, logger: logger)
                    let rows = try await own.query("SELECT move_import_home(\(tenant), \(home))", logger: logger).decode(Int64.self).first(where: { _ in true }) ?? 0
                    try await own.query("SELECT move_check_log(\(tenant), \(seq), \(ByteBuffer(bytes: hash)))", logger: logger).consume()
                    return (tail, rows)
                }
                try await beforePhase(.commit)
                try await main.query("SELECT move_switch_catalog(\(tenant), \(seq), \(ByteBuffer(bytes: hash)), \(fingerprint))", logger: logger).consume()
                return SwitchResult(lastSeq: seq, tail: tail, rows: rows)
            }
        } else {
            let source = try await home(move.fromServer, move.fromLocation)
            started.withLock { $0 = .now }
            if move.phase == "copying" {
                // From here the source refuses every append (its commands wait, then run again and
                // find the main database once the switch commits).
                try await inTenant(tenant, at: source) { [self] own in
                    try await own.query("SELECT set_config('lock_timeout', \(wait), true)", logger: logger).consume()
                    _ = try await Self.lockHead(tenant, on: own, logger: logger)
                    try await own.query("""
                        UPDATE tenants SET location = location || '@moving' WHERE id = \(tenant) AND location NOT LIKE '%@moving'
                        """, logger: logger).consume()
                }
                try await inTenant(tenant) { [self] main in
                    try await main.query("UPDATE tenant_moves SET phase = 'frozen' WHERE tenant_id = \(tenant) AND phase = 'copying'", logger: logger).consume()
                }
            }
            result = try await inTenant(tenant, at: source) { [self] own in
                let (seq, hash) = try await Self.lockHead(tenant, on: own, logger: logger)
                let home = try await own.query("SELECT move_export_home(\(tenant))", logger: logger).decode(String.self).first(where: { _ in true }) ?? "{}"
                return try await inTenant(tenant) { [self] main in
                    let tail = try await Self.copyTail(tenant, from: own, to: main, batch: batch, logger: logger)
                    let rows = try await main.query("SELECT move_import_home(\(tenant), \(home))", logger: logger).decode(Int64.self).first(where: { _ in true }) ?? 0
                    try await main.query("SELECT move_check_log(\(tenant), \(seq), \(ByteBuffer(bytes: hash)))", logger: logger).consume()
                    try await beforePhase(.commit)
                    try await main.query("SELECT move_switch_catalog(\(tenant), \(seq), \(ByteBuffer(bytes: hash)), \(fingerprint))", logger: logger).consume()
                    return SwitchResult(lastSeq: seq, tail: tail, rows: rows)
                }
            }
        }
        var timed = result
        timed.pause = ContinuousClock.now - started.withLock { $0 }
        return timed
    }

    /// Locks the tenant's head row where `connection` is (its appends wait from here until the
    /// transaction ends) and returns it.
    static func lockHead(_ tenant: TenantID, on connection: PostgresConnection, logger: Logger) async throws -> (Int64, [UInt8]) {
        let head = try await connection.query("SELECT last_seq, head_hash FROM event_heads WHERE tenant_id = \(tenant) FOR UPDATE", logger: logger)
            .decode((Int64, ByteBuffer).self).first(where: { _ in true })
        return (head?.0 ?? 0, head.map { Array(buffer: $0.1) } ?? [])
    }

    /// Copies the events `target` lacks from `source` (both in transactions entered into the
    /// tenant). Returns how many.
    static func copyTail(_ tenant: TenantID, from source: PostgresConnection, to target: PostgresConnection, batch: Int,
                         logger: Logger) async throws -> Int64 {
        let first = try await target.query("SELECT coalesce(max(seq), 0) FROM events WHERE tenant_id = \(tenant)", logger: logger)
            .decode(Int64.self).first(where: { _ in true }) ?? 0
        var reached = first
        while true {
            let rows = try await source.query("SELECT move_export_events(\(tenant), \(reached), \(Int64(batch)))", logger: logger)
                .decode(String.self).first(where: { _ in true }) ?? "[]"
            if rows == "[]" { return reached - first }
            let next = try await target.query("SELECT move_import_events(\(tenant), \(rows))", logger: logger)
                .decode(Int64.self).first(where: { _ in true }) ?? reached
            if next == reached { return reached - first }
            reached = next
        }
    }

    /// Removes the source's copy once every server has heard of the switch: the tenant's rows in
    /// the main database (but the mirror of its catalog rows), or its database of its own.
    func removeSource(_ record: TenantRecord, _ move: OpenMove) async throws {
        let tenant = record.id
        if move.from == "database" {
            if let server = move.fromServer, let name = move.fromLocation { try await dropDatabase(name, on: server) }
        } else {
            try await inTenant(tenant) { [self] main in
                try await main.query("SELECT move_remove_home(\(tenant))", logger: logger).consume()
            }
        }
        try await inTenant(tenant) { [self] main in
            try await main.query("SELECT move_finish(\(tenant))", logger: logger).consume()
        }
    }

    /// Drops a tenant's database of its own on `server`, after this process's pool of it is closed.
    func dropDatabase(_ name: String, on server: String) async throws {
        guard let homePools else { throw TenancyError(.unavailable, "databases of their own are not reachable from this process") }
        guard name.range(of: "^t_[0-9a-f]{32}$", options: .regularExpression) != nil else {
            throw TenancyError(.invalid, "\(name) is not a tenant database's name")
        }
        await homePools.retire(server: server, database: name)
        try await homePools.url(of: server).withConnection(logger: logger) { [logger] connection in
            try await HomeDatabases.drop(name, on: connection, logger: logger)
        }
    }
}
