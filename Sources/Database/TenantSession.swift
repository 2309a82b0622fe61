import Foundation
import Logging
import PostgresNIO
import Synchronization

/// The way into tenants' data: every statement on a tenant's rows runs in a `TenantSession`
/// handed out here, and nowhere else is a tenant entered.
///
/// The pool's connections run as the application role (see `DatabaseURL.clientConfiguration`),
/// so row-level security applies to all of them; a session adds the tenant. This is also where
/// placement is resolved, so that nothing above it knows: a session finds the tenant's home
/// (`TenantHome`) and enters it, which for a tenant with a schema of its own puts that schema
/// first on the search path, and for a tenant with a database of its own takes a connection to
/// that database (on whichever server holds it) from `HomePools`. A tenant in service whose home
/// is behind this build (a projection version it has no copy of, a database not brought to this
/// build) is refused with `DatabaseError.tenantBehind` rather than served from tables this build
/// no longer reads, or does not have yet.
public struct TenantDatabase: Sendable {
    private let client: PostgresClient
    private let logger: Logger
    private let homes: TenantHomes
    /// False for maintenance (`petstore migrate` filling a behind tenant's new copy).
    private let refusesBehind: Bool
    /// The way to databases of their own; nil where none is reachable (a tenant placed in one
    /// is then refused, never served from the main database's tables).
    private let pools: HomePools?
    /// Whether every tenant is entered in the main database, whatever its placement.
    private let controlPlane: Bool
    /// Commands' units of work committed together (`withTenant(_:grouped:_:)`).
    private let groups: CommitGroups
    /// Where reads wait their turn on each server; nil lets every read in at once.
    private let reads: ReadGate?

    /// The pools to databases of their own this reaches tenants through.
    public var homePools: HomePools? { pools }

    /// Commit lanes per database unless told otherwise (`CommitGroups`). On two cores and a
    /// fast disk 16 lanes measured the same as 4, and none (every command alone) 1.07-1.18x the
    /// POSTs at about half the p99 (bench/RESULTS.md); groups are kept by default for a tenant's
    /// burst on a slow disk, where alone it gets one command per fsync (its head row is held
    /// through each).
    public static let defaultCommitLanes = 4

    /// `commitLanes`: groups of commands that may commit side by side in one database; 0 commits
    /// every command alone.
    public init(client: PostgresClient, logger: Logger, homeTTL: Duration = .seconds(2), refusesBehind: Bool = true, pools: HomePools? = nil,
                reads: ReadGate? = nil, commitLanes: Int = TenantDatabase.defaultCommitLanes) {
        self.init(client: client, logger: logger, homes: TenantHomes(ttl: homeTTL), refusesBehind: refusesBehind, pools: pools, controlPlane: false,
                  groups: CommitGroups(lanes: max(commitLanes, 0), logger: logger), reads: reads)
    }

    private init(client: PostgresClient, logger: Logger, homes: TenantHomes, refusesBehind: Bool, pools: HomePools?, controlPlane: Bool,
                 groups: CommitGroups, reads: ReadGate?) {
        self.client = client
        self.logger = logger
        self.homes = homes
        self.refusesBehind = refusesBehind
        self.pools = pools
        self.controlPlane = controlPlane
        self.groups = groups
        self.reads = reads
    }

    /// Sessions in the main database for every tenant, whatever its placement: for what the
    /// control plane keeps of a tenant placed in a database of its own (its catalog rows, which
    /// resolution and keys are checked against, and its analytics), never for its log or its
    /// read models.
    public var onControlPlane: TenantDatabase {
        TenantDatabase(client: client, logger: logger, homes: homes, refusesBehind: refusesBehind, pools: nil, controlPlane: true, groups: groups, reads: reads)
    }

    /// Forgets where a tenant lives (every tenant when nil), after it moved or was migrated.
    public func forgetHome(of tenant: TenantID?) {
        homes.forget(tenant)
    }

    /// Where a tenant lives, as its sessions see it.
    public func home(of tenant: TenantID) async throws -> TenantHome {
        if let home = homes.cached(tenant) { return home }
        return try await client.withConnection { connection in try await homes.home(of: tenant, on: connection, logger: logger) }
    }

    private func enter(_ tenant: TenantID, on connection: PostgresConnection) async throws -> TenantHome {
        try admit(tenant, try await homes.home(of: tenant, on: connection, logger: logger))
    }

    private func admit(_ tenant: TenantID, _ home: TenantHome) throws -> TenantHome {
        guard refusesBehind, home.inService else { return home }
        let lacking = home.lacks(build: pools?.build)
        if !lacking.isEmpty {
            throw DatabaseError(.tenantBehind, "tenant \(tenant) is behind this build (it lacks \(lacking.joined(separator: ", "))): run petstore migrate")
        }
        return home
    }

    /// Runs `body` on a connection to the database holding the tenant's data. The home is looked
    /// up on the main database's connection, which then serves the tenant unless it lives in a
    /// database of its own; a home known already costs no lookup.
    private func withHomeConnection<Result>(
        _ tenant: TenantID,
        isolation: isolated (any Actor)? = #isolation,
        _ body: (PostgresConnection, TenantHome) async throws -> sending Result
    ) async throws -> sending Result {
        if !controlPlane, let home = homes.cached(tenant), home.placement == .database {
            return try await withOwnDatabase(try admit(tenant, home), isolation: isolation, body)
        }
        let routed: Routed<Result> = try await client.withConnection(isolation: isolation) { connection in
            let home = try await enter(tenant, on: connection)
            if home.placement == .database && !controlPlane { return .elsewhere(home) }
            return .here(try await body(connection, home))
        }
        switch consume routed {
        case .here(let result): return result
        case .elsewhere(let home): return try await withOwnDatabase(home, isolation: isolation, body)
        }
    }

    private enum Routed<Result> {
        case here(Result)
        case elsewhere(TenantHome)
    }

    private func withOwnDatabase<Result>(
        _ home: TenantHome,
        isolation: isolated (any Actor)? = #isolation,
        _ body: (PostgresConnection, TenantHome) async throws -> sending Result
    ) async throws -> sending Result {
        guard let pools, let database = home.location else {
            throw DatabaseError(.unreachable, "the tenant's database (server \(home.server)) is not reachable from here")
        }
        return try await pools.withLeasedConnection(server: home.server, database: database, isolation: isolation) { connection in
            try await body(connection, home)
        }
    }

    /// Refuses a pool whose role could see past row-level security: a superuser, a role with
    /// BYPASSRLS, or one with the privileges of the tables' owner (whose policies see every
    /// tenant). Run before serving; the error is one line naming the role and the reason.
    public func checkRole() async throws {
        try await client.withConnection { connection in try await Self.checkRole(on: connection, logger: logger) }
    }

    /// `checkRole` for the pools `url` makes (the application role set at connect), on a
    /// connection of its own: run before any pool or service starts, so that a refusal is an
    /// exit, not a shutdown of half-started services.
    public static func checkRole(_ url: DatabaseURL, logger: Logger) async throws {
        try await url.withConnection(logger: logger, role: LocalCluster.appRole) { connection in
            try await checkRole(on: connection, logger: logger)
        }
    }

    private static func checkRole(on connection: PostgresConnection, logger: Logger) async throws {
        let rows = try await connection.query("""
            SELECT current_user::text, r.rolsuper, r.rolbypassrls,
                   EXISTS (SELECT 1 FROM pg_class c
                            WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')
                              AND pg_has_role(current_user, c.relowner, 'USAGE'))
              FROM pg_roles r WHERE r.rolname = current_user
            """, logger: logger)
        for try await (role, superuser, bypass, owner) in rows.decode((String, Bool, Bool, Bool).self) {
            let reason = superuser ? "is a superuser" : bypass ? "has BYPASSRLS" : owner ? "has the privileges of the tables' owner" : nil
            if let reason {
                throw DatabaseError(.unsafeRole, "the serving connections run as role \(role), which \(reason) and so could read every tenant's rows; "
                    + "give an APP_DATABASE_URL of a role that owns nothing (or let \(LocalCluster.appRole) be set at connect)")
            }
            return
        }
        throw DatabaseError(.unsafeRole, "the serving connections' role was not found in pg_roles")
    }

    /// A unit of work in one tenant: a transaction that has entered the tenant before `body`
    /// runs, committed when `body` returns, rolled back when it throws. Work registered with
    /// `afterCommit` runs once the commit succeeded, before this returns. The session is the
    /// unit of work: code that must commit with it takes it as an argument.
    ///
    /// A unit of work that entered a home the tenant has since left (a move switched while it
    /// waited for the tenant's head row, or the home was remembered too long) is refused by the
    /// database before anything of it commits (the fence, SQLSTATE PT410): it is run again in
    /// the tenant's new home, so a command meets a move as a short wait, never as an error.
    public func withTenant<Result>(
        _ tenant: TenantID,
        isolation: isolated (any Actor)? = #isolation,
        _ body: (TenantSession) async throws -> sending Result
    ) async throws -> sending Result {
        var attempt = 0
        while true {
            do {
                return try await withTenantOnce(tenant, isolation: isolation, body)
            } catch where Self.fenced(error) {
                attempt += 1
                try await reenter(tenant, after: attempt)
            }
        }
    }

    /// `withTenant`, for a command: `grouped`, the unit of work joins the commands of other
    /// requests in one transaction (`CommitGroups`): it runs in a savepoint of its own, its
    /// failure undoes only its own work, and it returns once the group has committed. A tenant
    /// in a database of its own or whose home is not known yet, a command that met a move's
    /// fence or waited too long for a lock in the group, runs alone instead, as `withTenant`.
    ///
    /// `body` must not open another grouped unit of work: it would wait for a group that waits
    /// for it.
    public func withTenant<Result>(
        _ tenant: TenantID,
        grouped: Bool,
        isolation: isolated (any Actor)? = #isolation,
        _ body: (TenantSession) async throws -> sending Result
    ) async throws -> sending Result {
        // Tenants in a database of their own run alone: a group there would hold one of the few
        // connections of that database's pool, which their commands' other work also needs.
        if grouped, groups.lanes > 0, !controlPlane, let home = homes.cached(tenant), home.placement != .database {
            let admitted = try admit(tenant, home)
            if case .done(let result) = try await withTenantGrouped(tenant, home: admitted, isolation: isolation, body) {
                return result
            }
        }
        return try await withTenant(tenant, isolation: isolation, body)
    }

    private enum Grouped<Result> {
        case done(Result)
        case alone
    }

    private func withTenantGrouped<Result>(
        _ tenant: TenantID,
        home: TenantHome,
        isolation: isolated (any Actor)? = #isolation,
        _ body: (TenantSession) async throws -> sending Result
    ) async throws -> sending Grouped<Result> {
        let key = groups.key(for: tenant, in: home)
        guard let turn = await groups.turn(key, connect: { [self] work in try await withConnection(to: home, work) }) else {
            try Task.checkCancellation()
            return .alone
        }
        let session = TenantSession(tenant: tenant, home: home, mode: .transaction, connection: turn.connection, logger: logger)
        let result: Result
        do {
            try await turn.connection.execute(
                EnterTenantHome(tenant: tenant, fence: home.fence, searchPath: home.searchPath ?? turn.searchPath), logger: logger
            ).consume()
            result = try await body(session)
            session.close()
        } catch {
            session.close()
            let alone = Self.fenced(error) || Self.waitedForLock(error)
            if alone {
                // Undone before it runs again alone: its savepoint holds what the command took
                // (its Idempotency-Key's lock among them), which the lone run would be refused.
                _ = try? await turn.connection.query("ROLLBACK TO SAVEPOINT grouped", logger: logger).consume()
            }
            turn.done(stands: false)
            await session.rolledBack()
            if Self.fenced(error) { homes.forget(tenant) }
            if alone { return .alone }
            throw error
        }
        turn.done(stands: true)
        switch await turn.group.outcome() {
        case .success:
            await session.committed()
            return .done(result)
        case .failure(let error):
            await session.rolledBack()
            throw error
        }
    }

    /// Groups committed so far, and the commands committed in them.
    public var groupCommits: (groups: Int, commands: Int) { groups.committed }

    /// Whether `error` is a lock wait (or a statement) that ran out of time: in a group, where
    /// locks are waited for `CommitGroups.lockTimeout` at most, the command then runs alone.
    static func waitedForLock(_ error: any Error) -> Bool {
        DatabaseFault.classify(error) == .timedOut
    }

    /// A connection to the database that holds a tenant living in `home`, for a group.
    private func withConnection(to home: TenantHome, _ body: (PostgresConnection) async throws -> Void) async throws {
        if home.placement == .database {
            try await withOwnDatabase(home) { connection, _ in try await body(connection) }
        } else {
            try await client.withConnection { connection in try await body(connection) }
        }
    }

    /// Whether `error` is the fence's refusal: the session's home is no longer the tenant's.
    static func fenced(_ error: any Error) -> Bool {
        DatabaseFault.classify(error) == .homeMoved
    }

    /// Forgets the tenant's home before a fenced unit of work runs again; past a few seconds of
    /// refusals (a move that keeps switching back and forth) the caller gets a retryable error.
    private func reenter(_ tenant: TenantID, after attempt: Int) async throws {
        homes.forget(tenant)
        guard attempt <= 20 else {
            throw DatabaseError(.tenantMoving, "tenant \(tenant) is being moved and its new home was not reached in time; nothing was done")
        }
        if attempt > 1 { try await Task.sleep(for: .milliseconds(min(10 * attempt, 200))) }
    }

    private func withTenantOnce<Result>(
        _ tenant: TenantID,
        isolation: isolated (any Actor)? = #isolation,
        _ body: (TenantSession) async throws -> sending Result
    ) async throws -> sending Result {
        var opened: TenantSession?
        let result: Result
        do {
            result = try await withHomeConnection(tenant, isolation: isolation) { connection, home in
                try await connection.withTransaction(logger: logger, isolation: isolation) { connection in
                    try await EnterTenant.run(tenant, home: home, generic: true, on: connection, logger: logger)
                    let session = TenantSession(tenant: tenant, home: home, mode: .transaction, connection: connection, logger: logger)
                    opened = session
                    defer { session.close() }
                    return try await body(session)
                }
            }
        } catch let error as PostgresTransactionError {
            await opened?.rolledBack()
            // The body's own error comes back as it was thrown (after the rollback); a failed
            // BEGIN or COMMIT stays a transaction error, whose commit outcome may be unknown.
            if let thrown = error.closureError { throw thrown }
            throw error
        } catch {
            await opened?.rolledBack()
            throw error
        }
        await opened?.committed()
        return result
    }

    /// One call of a tenant function as a unit of work of its own: the statement enters the
    /// tenant and is its own transaction, so it costs one round trip (a lone append, say).
    package func call<Function: TenantFunction>(_ function: Function, as tenant: TenantID) async throws -> [Function.Row] where Function.Row: Sendable {
        var attempt = 0
        while true {
            do {
                return try await withHomeConnection(tenant) { connection, home in
                    try await EnteredTenantCall.rows(of: function, tenant: tenant, home: home, on: connection, logger: logger)
                }
            } catch where Self.fenced(error) {
                attempt += 1
                try await reenter(tenant, after: attempt)
            }
        }
    }

    /// Reads in one tenant. A call of a tenant read function enters the tenant within its own
    /// statement, so it costs one round trip; a plain statement first opens a read-only
    /// transaction entered into the tenant, which the rest of the session then shares.
    /// With a `ReadGate`, the read first waits its turn on the server of the tenant's home.
    public func readTenant<Result>(
        _ tenant: TenantID,
        isolation: isolated (any Actor)? = #isolation,
        _ body: (TenantSession) async throws -> sending Result
    ) async throws -> sending Result {
        guard let reads else { return try await readTenantNow(tenant, isolation: isolation, body) }
        // A home not known yet is looked up on the main server, where most tenants live.
        return try await reads.admitted(on: controlPlane ? "main" : homes.cached(tenant)?.server ?? "main") {
            try await readTenantNow(tenant, isolation: isolation, body)
        }
    }

    private func readTenantNow<Result>(
        _ tenant: TenantID,
        isolation: isolated (any Actor)? = #isolation,
        _ body: (TenantSession) async throws -> sending Result
    ) async throws -> sending Result {
        var opened: TenantSession?
        let result = try await withHomeConnection(tenant, isolation: isolation) { connection, home in
            try await read(tenant, home: home, on: connection, opened: &opened, body)
        }
        await opened?.committed()
        return result
    }

    /// `readTenant` for a tenant in a database of its own whose home the caller has (a session
    /// on the main database holds it): no connection to the main database is needed, so a
    /// caller holding one never waits for another.
    package func readTenant<Result>(
        _ tenant: TenantID,
        in home: TenantHome,
        isolation: isolated (any Actor)? = #isolation,
        _ body: (TenantSession) async throws -> sending Result
    ) async throws -> sending Result {
        guard home.placement == .database else { return try await readTenant(tenant, isolation: isolation, body) }
        guard let reads else { return try await readTenantNow(tenant, in: home, isolation: isolation, body) }
        return try await reads.admitted(on: home.server) { try await readTenantNow(tenant, in: home, isolation: isolation, body) }
    }

    private func readTenantNow<Result>(
        _ tenant: TenantID,
        in home: TenantHome,
        isolation: isolated (any Actor)? = #isolation,
        _ body: (TenantSession) async throws -> sending Result
    ) async throws -> sending Result {
        var opened: TenantSession?
        let result = try await withOwnDatabase(try admit(tenant, home), isolation: isolation) { connection, home in
            try await read(tenant, home: home, on: connection, opened: &opened, body)
        }
        await opened?.committed()
        return result
    }

    private func read<Result>(
        _ tenant: TenantID, home: TenantHome, on connection: PostgresConnection, opened: inout TenantSession?,
        isolation: isolated (any Actor)? = #isolation,
        _ body: (TenantSession) async throws -> sending Result
    ) async throws -> sending Result {
        let session = TenantSession(tenant: tenant, home: home, mode: .reads, connection: connection, logger: logger)
        opened = session
        do {
            let result = try await body(session)
            session.close()
            if session.openedTransaction { try await connection.query("COMMIT", logger: logger).consume() }
            return result
        } catch {
            session.close()
            if session.openedTransaction { try? await connection.query("ROLLBACK", logger: logger).consume() }
            throw error
        }
    }
}

/// One tenant's session on one connection, valid only inside the closure that received it.
///
/// Statements take the session, never a tenant id of their own: the tenant they run as is the
/// one the session entered. Tenant functions in SQL check that the tenant they are given is
/// the entered one and refuse any other.
public final class TenantSession: Sendable {
    enum Mode: Sendable { case transaction, reads }

    public let tenant: TenantID
    /// Where the tenant lives; for the data layer (the projection runtime picks the tenant's
    /// copy of a projection from it), never for deciding anything above it.
    package let home: TenantHome
    let mode: Mode
    private let connection: PostgresConnection
    package let logger: Logger
    private let state = Mutex(State())

    private struct State {
        var open = true
        var inTransaction = false
        var afterCommit: [@Sendable () async -> Void] = []
        var afterRollback: [@Sendable () async -> Void] = []
        /// The `afterRollback` work of savepoints rolled back, due when the session ends.
        var undone: [@Sendable () async -> Void] = []
        var savepoints = 0
        /// The last seq of each append this transaction made and has not rolled back.
        var appended: [Int64] = []
    }

    init(tenant: TenantID, home: TenantHome, mode: Mode, connection: PostgresConnection, logger: Logger) {
        self.tenant = tenant
        self.home = home
        self.mode = mode
        self.connection = connection
        self.logger = logger
        state.withLock { $0.inTransaction = mode == .transaction }
    }

    var isOpen: Bool { state.withLock { $0.open } }
    var openedTransaction: Bool { state.withLock { $0.inTransaction } }

    func close() { state.withLock { $0.open = false } }

    /// Runs `action` once this session's transaction has committed; dropped if it rolls back.
    /// In a read session, which commits nothing, it runs when the session ends.
    public func afterCommit(_ action: @escaping @Sendable () async -> Void) {
        state.withLock { $0.afterCommit.append(action) }
    }

    /// Runs `action` if what this session wrote is undone: its transaction rolled back or its
    /// commit failed (the outcome then unknown), or the savepoint it was registered in rolled
    /// back. For writes made elsewhere ahead of the commit, which must then be set right. It
    /// runs once the session has let go of its connection (for a savepoint, when the session
    /// ends, whatever its outcome): work that takes another connection from the same pool must
    /// not wait behind sessions that hold all of them.
    public func afterRollback(_ action: @escaping @Sendable () async -> Void) {
        state.withLock { $0.afterRollback.append(action) }
    }

    /// Records an append this session's transaction made, through `seq`: the append passed the
    /// fence, and the tenant's head row stays locked until the transaction ends.
    package func noteAppend(through seq: Int64) {
        state.withLock { $0.appended.append(seq) }
    }

    /// Whether this session's transaction appended the tenant's events through `seq`, and still
    /// stands by that append (no savepoint around it rolled back).
    package func appended(through seq: Int64) -> Bool {
        state.withLock { $0.open && $0.inTransaction && $0.appended.contains(seq) }
    }

    func committed() async {
        let actions = state.withLock { state in
            defer { state.afterCommit = []; state.afterRollback = []; state.undone = [] }
            return state.undone + state.afterCommit
        }
        for action in actions { await action() }
    }

    func rolledBack() async {
        let actions = state.withLock { state in
            defer { state.afterCommit = []; state.afterRollback = []; state.undone = [] }
            return state.undone + state.afterRollback
        }
        for action in actions { await action() }
    }

    // MARK: - Statements

    /// A statement on the tenant's data.
    package func query(_ query: PostgresQuery) async throws -> PostgresRowSequence {
        try await enterIfNeeded()
        return try await connection.query(query, logger: logger)
    }

    /// A statement whose rows nobody needs.
    package func run(_ query: PostgresQuery) async throws {
        try await self.query(query).consume()
    }

    /// A prepared statement on the tenant's data.
    package func execute<Statement: PostgresPreparedStatement>(
        _ statement: Statement
    ) async throws -> AsyncThrowingMapSequence<PostgresRowSequence, Statement.Row> {
        try await enterIfNeeded()
        return try await connection.execute(statement, logger: logger)
    }

    /// A call of a tenant function. Outside a transaction the call enters the tenant itself, in
    /// the same statement, so the setting lives exactly as long as the call.
    package func call<Function: TenantFunction>(_ function: Function) async throws -> [Function.Row] {
        let inTransaction = try checkOpen()
        var rows: [Function.Row] = []
        if inTransaction {
            for try await row in try await connection.execute(TenantCall(function: function, tenant: tenant), logger: logger) {
                rows.append(row)
            }
        } else {
            rows = try await EnteredTenantCall.rows(of: function, tenant: tenant, home: home, on: connection, logger: logger)
        }
        return rows
    }

    /// `body` in a savepoint: a failure undoes only what `body` did (and drops the after-commit
    /// work it registered), and leaves the session usable.
    package func withSavepoint<Result>(
        isolation: isolated (any Actor)? = #isolation,
        _ body: (TenantSession) async throws -> sending Result
    ) async throws -> sending Result {
        try await enterIfNeeded()
        let (name, registered, undoRegistered, appends) = state.withLock { state in
            state.savepoints += 1
            return ("unit_\(state.savepoints)", state.afterCommit.count, state.afterRollback.count, state.appended.count)
        }
        try await connection.query(PostgresQuery(unsafeSQL: "SAVEPOINT \(name)"), logger: logger).consume()
        do {
            let result = try await body(self)
            try await connection.query(PostgresQuery(unsafeSQL: "RELEASE SAVEPOINT \(name)"), logger: logger).consume()
            return result
        } catch {
            try? await connection.query(PostgresQuery(unsafeSQL: "ROLLBACK TO SAVEPOINT \(name)"), logger: logger).consume()
            state.withLock { state in
                state.afterCommit.removeSubrange(min(registered, state.afterCommit.count)...)
                let from = min(undoRegistered, state.afterRollback.count)
                state.undone += state.afterRollback[from...]
                state.afterRollback.removeSubrange(from...)
                state.appended.removeSubrange(min(appends, state.appended.count)...)
            }
            throw error
        }
    }

    @discardableResult
    private func checkOpen() throws -> Bool {
        let (open, inTransaction) = state.withLock { ($0.open, $0.inTransaction) }
        guard open else {
            throw DatabaseError(.sessionClosed, "a tenant session was used after its transaction ended")
        }
        return inTransaction
    }

    private func enterIfNeeded() async throws {
        guard try !checkOpen() else { return }
        try await connection.query("BEGIN READ ONLY", logger: logger).consume()
        state.withLock { $0.inTransaction = true }
        try await EnterTenant.run(tenant, home: home, on: connection, logger: logger)
    }
}

/// A SQL function over one tenant's data whose first parameter is the tenant. It checks that
/// parameter against the session's tenant (`assert_tenant`), so a call can never reach past it.
package protocol TenantFunction: Sendable {
    associatedtype Row
    /// The function's name, a fixed identifier.
    static var name: String { get }
    /// The parameters after the tenant, as SQL types (`uuid`, `bigint`, …), in order.
    static var parameterTypes: [String] { get }
    func bind(into bindings: inout PostgresBindings)
    func decodeRow(_ row: PostgresRow) throws -> Row
}

extension TenantFunction {
    /// The parameters after the tenant as placeholders, numbered from `first`.
    static func arguments(from first: Int) -> String {
        parameterTypes.enumerated().map { ", $\($0.offset + first)::\($0.element)" }.joined()
    }
}

/// A generic statement over a tenant function whose name and text are made once per function.
/// PostgresNIO asks a prepared statement for both on every execution; the default name is
/// `String(reflecting:)` of the (generic) type, and the text is built from the function's
/// parameter types.
protocol TenantCallStatement: PostgresPreparedStatement {
    static func makeTexts() -> (name: String, sql: String)
}

private let madeTexts = Mutex<[ObjectIdentifier: (name: String, sql: String)]>([:])

extension TenantCallStatement {
    static var name: String { texts.name }
    static var sql: String { texts.sql }

    private static var texts: (name: String, sql: String) {
        let key = ObjectIdentifier(Self.self)
        if let texts = madeTexts.withLock({ $0[key] }) { return texts }
        let texts = makeTexts()
        madeTexts.withLock { $0[key] = texts }
        return texts
    }
}

/// A tenant function called inside the session's transaction, which has entered the tenant.
struct TenantCall<Function: TenantFunction>: TenantCallStatement {
    typealias Row = Function.Row
    static func makeTexts() -> (name: String, sql: String) {
        ("tenant_call " + Function.name, "SELECT * FROM \(Function.name)($1::uuid\(Function.arguments(from: 2)))")
    }

    let function: Function
    let tenant: TenantID

    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings()
        bindings.append(tenant)
        function.bind(into: &bindings)
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> Row { try function.decodeRow(row) }
}

/// A tenant function called on its own: the statement enters the tenant (transaction-local, and
/// the statement is its transaction) before the function runs, which the LATERAL reference to
/// the entered value orders.
struct EnteredTenantCall<Function: TenantFunction>: TenantCallStatement {
    typealias Row = Function.Row
    static func makeTexts() -> (name: String, sql: String) {
        ("entered_tenant_call " + Function.name,
         "SELECT called.* FROM (SELECT set_config('app.tenant_id', $1::text, true) AS tenant, "
            + "set_config('petstore.home', $2::text, true) AS home) AS entered, "
            + "LATERAL \(Function.name)(entered.tenant::uuid\(Function.arguments(from: 3))) AS called")
    }

    let function: Function
    let tenant: TenantID
    let fence: String

    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings()
        bindings.append(tenant.description)
        bindings.append(fence)
        function.bind(into: &bindings)
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> Row { try function.decodeRow(row) }

    /// The call for a tenant in `home`: the shared statement, or the one that also sets the
    /// search path.
    static func rows(of function: Function, tenant: TenantID, home: TenantHome, on connection: PostgresConnection, logger: Logger) async throws -> [Row] {
        var rows: [Row] = []
        if let path = home.searchPath {
            for try await row in try await connection.execute(EnteredHomeCall(function: function, tenant: tenant, fence: home.fence, searchPath: path), logger: logger) {
                rows.append(row)
            }
        } else {
            for try await row in try await connection.execute(EnteredTenantCall(function: function, tenant: tenant, fence: home.fence), logger: logger) {
                rows.append(row)
            }
        }
        return rows
    }
}

/// `EnteredTenantCall` that also puts the tenant's own schema on the search path. Both settings
/// are made in one subquery that the call references, so they are made before it runs (a
/// subquery with volatile functions is neither flattened nor trimmed of unused outputs).
struct EnteredHomeCall<Function: TenantFunction>: TenantCallStatement {
    typealias Row = Function.Row
    static func makeTexts() -> (name: String, sql: String) {
        ("entered_home_call " + Function.name,
         "SELECT called.* FROM (SELECT set_config('app.tenant_id', $1::text, true) AS tenant, "
            + "set_config('petstore.home', $2::text, true) AS home, "
            + "set_config('search_path', $3::text, true) AS path) AS entered, "
            + "LATERAL \(Function.name)(entered.tenant::uuid\(Function.arguments(from: 4))) AS called")
    }

    let function: Function
    let tenant: TenantID
    let fence: String
    let searchPath: String

    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings()
        bindings.append(tenant.description)
        bindings.append(fence)
        bindings.append(searchPath)
        function.bind(into: &bindings)
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> Row { try function.decodeRow(row) }
}

/// Sets the tenant for the rest of the transaction: the one place a transaction enters a tenant.
struct EnterTenant: PostgresPreparedStatement {
    static let name = "enter_tenant"
    static let sql = """
        SELECT set_config('app.tenant_id', $1::text, true), set_config('petstore.home', $2::text, true),
               set_config('plan_cache_mode', coalesce($3::text, current_setting('plan_cache_mode')), true)
        """
    typealias Row = (String, String, String)

    let tenant: TenantID
    /// The home entered (`TenantHome.fence`), which appends are fenced on; empty for the
    /// owner's maintenance, which is not fenced.
    var fence = ""
    /// The plan cache mode for the rest of the transaction; nil keeps the connection's.
    var plans: String? = nil

    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings()
        bindings.append(tenant.description)
        bindings.append(fence)
        bindings.append(plans)
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Row.self) }

    /// Enters `tenant` in `home`: for a tenant with a schema of its own, with that schema first
    /// on the search path for the rest of the transaction too.
    ///
    /// `generic`, for a unit of work: the log's functions run generic plans, as in a group
    /// (`CommitGroups`). With custom plans, made afresh on every call, planning took a tenth of
    /// the machine's CPU under bench/peer.sh's POSTs (perf), 6.6% with generic ones. Reads keep
    /// the connection's mode.
    static func run(_ tenant: TenantID, home: TenantHome, generic: Bool = false, on connection: PostgresConnection, logger: Logger) async throws {
        let plans = generic ? "force_generic_plan" : nil
        if let path = home.searchPath {
            try await connection.execute(EnterTenantHome(tenant: tenant, fence: home.fence, searchPath: path, plans: plans), logger: logger).consume()
        } else {
            try await connection.execute(EnterTenant(tenant: tenant, fence: home.fence, plans: plans), logger: logger).consume()
        }
    }
}

extension TenantDatabase {
    /// Enters `tenant` for the rest of the transaction `connection` is in, for the owner's
    /// maintenance that must meet the tenant's rows through row-level security as the
    /// application does (the purge): the SQL it calls asserts the tenant, and never enters it.
    public static func enter(_ tenant: TenantID, inOwnerTransaction connection: PostgresConnection, logger: Logger) async throws {
        try await connection.execute(EnterTenant(tenant: tenant), logger: logger).consume()
    }
}

/// `EnterTenant` with the tenant's search path.
struct EnterTenantHome: PostgresPreparedStatement {
    static let name = "enter_tenant_home"
    static let sql = """
        SELECT set_config('app.tenant_id', $1::text, true), set_config('petstore.home', $2::text, true), set_config('search_path', $3::text, true),
               set_config('plan_cache_mode', coalesce($4::text, current_setting('plan_cache_mode')), true)
        """
    typealias Row = (String, String, String, String)

    let tenant: TenantID
    let fence: String
    let searchPath: String
    /// As `EnterTenant.plans`.
    var plans: String? = nil

    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings()
        bindings.append(tenant.description)
        bindings.append(fence)
        bindings.append(searchPath)
        bindings.append(plans)
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Row.self) }
}

extension AsyncSequence {
    /// Reads a result to its end, for statements whose rows nobody needs.
    package func consume() async throws {
        for try await _ in self {}
    }
}
