import Database
import EventLog
import Foundation
import Logging
import PostgresNIO
import ServiceLifecycle
import Synchronization

/// Keeps every installed projection version up to date with every tenant's log.
///
/// For a (projection version, tenant) pair, one batch is one transaction: take the pair's
/// advisory lock, lock its checkpoint row, read the events after it, apply them, move the
/// checkpoint, commit. A crash anywhere before the commit loses the whole batch and nothing
/// else; the next run starts again from the checkpoint, so each event takes effect once.
/// The log's seqs are assigned in commit order under the tenant's head lock, so "the events
/// after my checkpoint" never skips one that commits late.
///
/// Work is found by polling positions (every `pollInterval`) and by wake-ups from appends
/// (`AppendSignal`: in process, or relayed from other processes). A version in state
/// `building` is brought up to date beside the active one and then activated.
public final class ProjectionRuntime: Service, Sendable {
    public struct Version: Sendable, Hashable {
        public let name: String
        public let version: String
        public let schema: String
        public let state: String
        /// Whether each tenant's rows live with the tenant (`tenant`) or in the shared tables.
        public let scope: String

        /// The schema of this version's rows for the session's tenant.
        func schema(in session: TenantSession) -> String {
            session.home.projectionSchema(shared: schema, version: version, perTenant: scope == "tenant")
        }
    }

    let client: PostgresClient
    let database: TenantDatabase
    let store: EventStore
    let projectors: [String: any Projector]
    let batchSize: Int
    let pollInterval: Duration
    let logger: Logger
    /// For tests: runs after a batch is applied and before it commits.
    let beforeCommit: @Sendable (TenantID, Int) throws -> Void
    /// Told each batch's lags in seconds, for the metrics.
    let lagObserver: (@Sendable (String, [Double]) -> Void)?

    public init(
        client: PostgresClient, store: EventStore, projectors: [any Projector],
        batchSize: Int = 500, pollInterval: Duration = .seconds(1), lagObserver: (@Sendable (String, [Double]) -> Void)? = nil,
        maintenance: Bool = false,
        logger: Logger, beforeCommit: @escaping @Sendable (TenantID, Int) throws -> Void = { _, _ in }
    ) {
        self.lagObserver = lagObserver
        self.client = client
        // Maintenance (migrate) fills tenants that are behind, which serving refuses.
        self.database = TenantDatabase(client: client, logger: logger, refusesBehind: !maintenance, pools: store.database.homePools)
        self.store = store
        self.projectors = Dictionary(uniqueKeysWithValues: projectors.map { ($0.name, $0) })
        self.batchSize = batchSize
        self.pollInterval = pollInterval
        self.logger = logger
        self.beforeCommit = beforeCommit
    }

    public func run() async throws {
        let local = store.signal.subscribe(origins: [.local])
        let remote = store.signal.subscribe(origins: [.remote])
        let names = Array(projectors.keys)
        // One loop per projection: a busy one (pets under a burst of creates) never holds up
        // another. Tasks of their own rather than a task group's children, so that shutdown
        // is not held for good by a pass that does not end (a group waits for every child).
        let loops = names.map { name in
            Task {
                while !Task.isShuttingDownGracefully && !Task.isCancelled {
                    do {
                        try await self.catchUpAll(only: name, sweep: false)
                    } catch where Task.isCancelled {
                        break  // shutting down: the pass rolled back, and the next run redoes it
                    } catch {
                        self.logger.warning("projection pass failed; will retry",
                                            metadata: ["projection": "\(name)", "error": "\(DatabaseURL.describe(error))"])
                    }
                    await self.waitForWork(name, pacing: self.projectors[name]?.pacing ?? .zero)
                }
            }
        }
        await withTaskCancellationHandler {
            // Forward wake-ups into flags the loops check, so bursts collapse into one pass.
            await withDiscardingTaskGroup { group in
                group.addTask { for await tenants in local.cancelOnGracefulShutdown() { self.wake(names, tenants, remote: false) } }
                group.addTask { for await tenants in remote.cancelOnGracefulShutdown() { self.wake(names, tenants, remote: true) } }
            }
        } onCancel: {
            for loop in loops { loop.cancel() }
        }
        for loop in loops { loop.cancel() }
        // A pass in flight is cancelled (its transaction rolls back; the next run redoes it);
        // one that does not end in time is left behind, named, and shutdown goes on.
        let all = Task { for loop in loops { await loop.value } }
        if await !finished(all, within: Self.shutdownGrace) {
            logger.warning("projection passes did not end at shutdown; left behind", metadata: ["activity": "\(activityReport())"])
        }
    }

    /// How long shutdown waits for the passes in flight.
    static let shutdownGrace: Duration = .seconds(10)

    /// What each projection version's pass is doing and since when: said when a pass does not
    /// end at shutdown, the one thing that tells where it waits.
    private let activity = Mutex<[String: (what: String, since: ContinuousClock.Instant)]>([:])

    private func doing(_ version: Version, _ what: String?) {
        let key = "\(version.name) \(version.version)"
        activity.withLock { $0[key] = what.map { ($0, ContinuousClock.now) } }
    }

    /// The passes in flight: each version, what it is doing, and for how long.
    public func activityReport() -> String {
        let now = ContinuousClock.now
        let entries = activity.withLock { $0 }
        guard !entries.isEmpty else { return "no pass in flight" }
        return entries.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value.what) for \(now - $0.value.since)" }.joined(separator: "; ")
    }

    /// Per projection: whether it was woken since its loop last looked, and the loop waiting for
    /// that, if it is.
    private let woken = Mutex<[String: (pending: Bool, waiter: CheckedContinuation<Void, Never>?)]>([:])
    /// Tenants appended to since each projection's last pass: how tenants in databases of their
    /// own are found between sweeps (their heads are not in the main database's positions).
    /// True for a tenant another process appended to: its head is not known here.
    private let wokenTenants = Mutex<[String: [TenantID: Bool]]>([:])
    /// How far each version's checkpoint (by `key(of:)`) is known to have moved for a tenant, by
    /// this process's own commits: a woken tenant whose appends in this process were all
    /// projected (inline, or by a pass since) is not visited. Sweeps still visit everyone.
    private let knownApplied = Mutex<[String: [TenantID: Int64]]>([:])
    private let batchCounts = Mutex<[String: Int]>([:])

    /// Background batches (transactions) run for a projection so far, empty ones included.
    public func batches(of name: String) -> Int {
        batchCounts.withLock { $0[name] ?? 0 }
    }
    /// When each projection last looked at every tenant in a database of its own.
    private let lastSweep = Mutex<[String: ContinuousClock.Instant]>([:])
    private let knownPlaced = Mutex<Set<TenantID>?>(nil)
    /// How often every tenant in a database of its own is looked at, woken or not.
    static let sweepInterval: Duration = .seconds(10)
    /// The default search path of each database sessions run in (`main`, or server/database).
    private let defaultSearchPaths = Mutex<[String: String]>([:])
    private let versionCache = Mutex<(versions: [Version], at: ContinuousClock.Instant)?>(nil)
    private let lagSamples = Mutex<[String: LagReservoir]>([:])

    private func wake(_ names: [String], _ tenants: Set<TenantID>, remote: Bool) {
        let waiting = woken.withLock { woken in
            names.compactMap { name -> CheckedContinuation<Void, Never>? in
                if let waiter = woken[name]?.waiter {
                    woken[name] = (false, nil)
                    return waiter
                }
                woken[name] = (true, nil)
                return nil
            }
        }
        for waiter in waiting { waiter.resume() }
        wokenTenants.withLock { woken in
            for name in names {
                for tenant in tenants { woken[name, default: [:]][tenant, default: false] = woken[name]?[tenant] == true || remote }
            }
        }
    }

    private static func key(of version: Version) -> String { "\(version.name) \(version.version)" }

    private func markApplied(_ version: Version, tenant: TenantID, through seq: Int64) {
        knownApplied.withLock { known in
            known[Self.key(of: version), default: [:]][tenant] = max(known[Self.key(of: version)]?[tenant] ?? 0, seq)
        }
    }

    /// Whether everything this process appended to the tenant is known to be in the version.
    private func isKnownCurrent(_ version: Version, tenant: TenantID) -> Bool {
        guard let head = store.signal.lastLocalAppend(of: tenant),
              let applied = knownApplied.withLock({ $0[Self.key(of: version)]?[tenant] }) else { return false }
        return applied >= head
    }

    private func waitForWork(_ name: String, pacing: Duration) async {
        if pacing > .zero {
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: pacing) }
        }
        // Woken, or the poll's interval over, whichever comes first: one timer a wait, where
        // looking for a wake-up every 10 ms cost a hundred timer wake-ups a second per loop.
        let poll = pollInterval
        try? await cancelWhenGracefulShutdown {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { try? await Task.sleep(for: poll) }
                group.addTask { await self.untilWoken(name) }
                await group.next()
                group.cancelAll()
            }
        }
    }

    /// Returns once `name` is woken (at once if it was since the last look), or when cancelled.
    private func untilWoken(_ name: String) async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let now = woken.withLock { woken -> Bool in
                    if woken[name]?.pending == true || Task.isCancelled {
                        woken[name] = (false, nil)
                        return true
                    }
                    woken[name] = (false, continuation)
                    return false
                }
                if now { continuation.resume() }
            }
        } onCancel: {
            woken.withLock { woken -> CheckedContinuation<Void, Never>? in
                defer { woken[name]?.waiter = nil }
                return woken[name]?.waiter
            }?.resume()
        }
    }

    /// The installed versions that are served or being built.
    public func versions() async throws -> [Version] {
        var versions: [Version] = []
        let rows = try await client.query(
            "SELECT name, version, schema_name, state, scope FROM projections WHERE state IN ('active', 'building') ORDER BY name, state",
            logger: logger)
        for try await (name, version, schema, state, scope) in rows.decode((String, String, String, String, String).self) where projectors[name] != nil {
            versions.append(Version(name: name, version: version, schema: schema, state: state, scope: scope))
        }
        return versions
    }

    /// One pass: every version, every tenant that is behind; then activates built versions.
    /// Versions run side by side, so one that is busy (say, pets under a burst of creates)
    /// does not hold up the others.
    /// `sweep` looks at every tenant in a database of its own; the background loop does that
    /// every `sweepInterval`, and otherwise only at those it heard were appended to.
    public func catchUpAll(only name: String? = nil, sweep: Bool = true) async throws {
        let versions = try await versions().filter { name == nil || $0.name == name }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for version in versions {
                group.addTask { try await self.catchUpAll(version, sweep: sweep) }
            }
            try await group.waitForAll()
        }
    }

    private func catchUpAll(_ version: Version, sweep: Bool) async throws {
        defer { doing(version, nil) }
        doing(version, "reading positions")
        var behind = false
        let positions = try await client.query(
            "SELECT tenant_id, applied_seq, head FROM projection_positions(\(version.name), \(version.version))", logger: logger)
        var lagging: [TenantID] = []
        var inMain: Set<TenantID> = []
        for try await (tenant, position, head) in positions.decode((UUID, Int64, Int64).self) {
            inMain.insert(TenantID(tenant))
            if position < head { lagging.append(TenantID(tenant)) }
        }
        doing(version, "listing tenants in databases of their own")
        lagging += try await ownDatabaseTenantsToVisit(version, sweep: sweep, inMain: inMain)
        for tenant in lagging {
            doing(version, "catching up tenant \(tenant)")
            do {
                if try await catchUp(tenant: tenant, version: version) == false { behind = true }
            } catch where DatabaseFault.classify(error) == .tenantBehind || Self.lacksCopy(error) {
                // A tenant with no copy of this version yet (a new version, or one the tenant is
                // behind on) waits for `petstore migrate`, which also catches it up; until then
                // a version being built is not activated.
                behind = true
            }
        }
        // Tenants in databases of their own are not in the positions above: with any, only after
        // a pass that looked at all of them.
        if version.state == "building" && !behind {
            doing(version, "activating")
            let lookedAtAll = sweep ? true : !(try await hasDatabaseTenants())
            if lookedAtAll { try await activateIfCaughtUp(version) }
        }
    }

    /// Tenants in databases of their own to catch up in this pass: those appended to since the
    /// last one, and all of them every `sweepInterval` (appends made by other processes, or a
    /// catch-up that failed). A visit to a tenant that is up to date is one short transaction.
    private func ownDatabaseTenantsToVisit(_ version: Version, sweep asked: Bool, inMain: Set<TenantID>) async throws -> [TenantID] {
        let woken = wokenTenants.withLock { $0.removeValue(forKey: version.name) ?? [:] }
        let now = ContinuousClock.now
        let sweep = lastSweep.withLock { last in
            guard asked || last[version.name].map({ now - $0 >= Self.sweepInterval }) ?? true else { return false }
            last[version.name] = now
            return true
        }
        guard sweep || !woken.isEmpty else { return [] }
        // Which tenants are in databases of their own changes only with onboarding and moves: a
        // list read by a sweep serves the wake-ups until a woken tenant is in neither it nor the
        // main database's positions (placed since).
        var placed = sweep ? nil : knownPlaced.withLock { $0 }
        if let known = placed, woken.keys.contains(where: { !known.contains($0) && !inMain.contains($0) }) { placed = nil }
        if placed == nil {
            var fresh: Set<TenantID> = []
            for try await id in try await client.query("SELECT tenant_id FROM database_tenants()", logger: logger).decode(UUID.self) {
                fresh.insert(TenantID(id))
            }
            knownPlaced.withLock { $0 = fresh }
            placed = fresh
        }
        guard let placed, !sweep else { return Array(placed ?? []) }
        return woken.compactMap { tenant, remote in
            placed.contains(tenant) && (remote || !isKnownCurrent(version, tenant: tenant)) ? tenant : nil
        }
    }

    private func hasDatabaseTenants() async throws -> Bool {
        try await client.query("SELECT count(*) FROM database_tenants()", logger: logger).decode(Int.self).first(where: { _ in true }) ?? 0 > 0
    }

    /// Whether `error` is `begin_projection_batch` refusing a tenant's copy that does not exist.
    static func lacksCopy(_ error: any Error) -> Bool {
        var error = error
        if let transaction = error as? PostgresTransactionError, let inner = transaction.closureError { error = inner }
        return (error as? PSQLError)?.serverInfo?[.sqlState] == "PT503"
    }

    /// Brings the versions of the named projections (all when nil) up to date for one tenant:
    /// what a command calls after its append so the client reads its own write. `pool` is the
    /// caller's (the request pool), so request-driven catch-ups never wait for the background
    /// loop's connections, nor it for theirs.
    ///
    public func catchUp(tenant: TenantID, projections names: Set<String>? = nil, using pool: TenantDatabase? = nil) async throws {
        for version in try await cachedVersions() where names?.contains(version.name) ?? true {
            do {
                _ = try await catchUp(tenant: tenant, version: version, using: pool ?? database)
            } catch where version.state == "building" && (DatabaseFault.classify(error) == .tenantBehind || Self.lacksCopy(error)) {
                // A version being built that this tenant has no copy of yet: `petstore migrate`
                // makes and fills it. Nobody reads it before then.
            }
        }
    }

    /// Waits until no version is left being built: fills every building version for every
    /// tenant and activates it. `petstore migrate` ends with this, so that the servers of the
    /// new build, started after it, find their read models complete and served. Bounded by
    /// `timeout`; throws if a version is still building then (a tenant that cannot be reached).
    public func finishBuilding(timeout: Duration = .seconds(600), progress: @Sendable ([Version]) -> Void = { _ in }) async throws {
        let deadline = ContinuousClock.now + timeout
        while true {
            let building = try await versions().filter { $0.state == "building" }
            if building.isEmpty { return }
            progress(building)
            guard ContinuousClock.now < deadline else {
                throw DatabaseError(.unreachable, "projection version(s) still being built after \(timeout): "
                                    + building.map { "\($0.name) \($0.version)" }.joined(separator: ", "))
            }
            try await catchUpAll()
            try await Task.sleep(for: .milliseconds(250))
        }
    }

    /// Projects a command's appends into the served versions of the named projections inside the
    /// command's own unit of work: the events, the rows they make and the checkpoint past them
    /// commit together. A command then costs one commit, and its client reads its own write the
    /// moment it is answered, whatever happens after the commit (a crash included).
    ///
    /// It is the background pass's batch, on the command's transaction: the same pair lock and
    /// checkpoint row lock (taken after the tenant's head lock, which no pass takes, so the two
    /// never wait on each other in a cycle), and whatever the version had not applied yet
    /// (appends by another process since the last pass) applied first, in log order, so every
    /// event still takes effect once. A failure fails the command: nothing of it commits.
    ///
    /// Versions being built are caught up after the commit instead: the tenant's copy of one may
    /// not exist yet (`petstore migrate` makes it), and that must not fail the command.
    ///
    /// `appended`, the command's own events as recorded (ending at `seq`), are applied from
    /// memory when the version has applied everything before them: the usual case, which then
    /// costs no read of the log.
    public func projectInline(_ session: TenantSession, projections names: Set<String>, through seq: Int64,
                              appended: [RecordedEvent] = [], using pool: TenantDatabase) async throws {
        var later: Set<String> = []
        let versions = try await cachedVersions()
        // Versions that read none of the command's events move past them with the first
        // checkpoint statement below, when they had applied everything before them.
        let types = Set(appended.map(\.stream.type))
        var bystanders = appended.last?.seq == seq ? versions.filter { version in
            version.state == "active" && version.scope == "tenant" && !names.contains(version.name)
                && projectors[version.name]?.streamTypes?.isDisjoint(with: types) == true
        } : []
        for version in versions where names.contains(version.name) {
            guard version.state == "active", version.scope == "tenant", let projector = projectors[version.name] else {
                later.insert(version.name)
                continue
            }
            let schema = version.schema(in: session)
            var started: Int64?
            if session.appended(through: seq) {
                for try await position in try await session.execute(
                    InlineBatchStart(tenant: session.tenant, projection: version.name, version: version.version, schema: schema)) {
                    started = position
                }
            }
            if started == nil {
                guard let position = try await session.call(
                    BeginProjectionBatch(projection: version.name, version: version.version, schema: schema)).first ?? 0
                else { continue }
                started = position
            }
            guard let position = started else { continue }
            var applied = position
            var projected: [RecordedEvent] = []
            while applied < seq {
                let events = if let first = appended.first, first.seq == applied + 1, appended.last?.seq == seq {
                    appended
                } else {
                    try await store.read(after: applied, limit: batchSize, in: session)
                }
                guard let last = events.last else { break }
                try await projector.applyRelevant(events, in: session)
                applied = last.seq
                projected += events
            }
            // The batch start put the version's schema first on the search path for the rest of
            // the transaction; the command's own statements after this expect the tenant's.
            var moved: [String] = []
            for try await (_, passed) in try await session.execute(InlineCheckpoint(
                tenant: session.tenant, projection: version.name, version: version.version, applied: applied,
                searchPath: try await searchPath(of: session), bystanders: bystanders, events: min(appended.first?.seq ?? seq, seq)...seq)) {
                moved = passed
            }
            let passed = bystanders.filter { moved.contains($0.name) }
            bystanders = []
            let tenant = session.tenant
            session.afterCommit { [self, projected, applied] in
                recordLag(of: projected, in: version.name)
                markApplied(version, tenant: tenant, through: applied)
                for bystander in passed { markApplied(bystander, tenant: tenant, through: seq) }
            }
        }
        if !later.isEmpty { catchUpAfterCommit(of: session, projections: later, using: pool) }
    }

    /// The search path the session's own statements expect: its home's, or the database's
    /// default, read once per database. Reading `pg_settings` builds a row for every setting,
    /// which was a tenth of what a command cost PostgreSQL when done per command.
    private func searchPath(of session: TenantSession) async throws -> String {
        if let path = session.home.searchPath { return path }
        let database = session.home.placement == .database ? "\(session.home.server)/\(session.home.location ?? "")" : "main"
        if let path = defaultSearchPaths.withLock({ $0[database] }) { return path }
        let rows = try await session.query("SELECT reset_val FROM pg_settings WHERE name = 'search_path'")
        guard let path = try await rows.decode(String.self).first(where: { _ in true }) else {
            throw DatabaseError(.unreachable, "pg_settings has no search_path")
        }
        defaultSearchPaths.withLock { $0[database] = path }
        return path
    }

    /// Catches the session's tenant up once its unit of work has committed: before that the
    /// events are not visible (and waiting for them would wait on ourselves). A failure is
    /// logged: the background loop applies the events anyway, a moment later.
    public func catchUpAfterCommit(of session: TenantSession, projections names: Set<String>? = nil, using pool: TenantDatabase? = nil) {
        let tenant = session.tenant
        session.afterCommit { [self] in
            do {
                try await catchUp(tenant: tenant, projections: names, using: pool)
            } catch {
                logger.warning("catch-up after commit failed", metadata: ["error": "\(DatabaseURL.describe(error))"])
            }
        }
    }

    /// `versions()`, reused for up to a second: the command path should not ask every time.
    func cachedVersions() async throws -> [Version] {
        let now = ContinuousClock.now
        if let cached = versionCache.withLock({ $0 }), now - cached.at < .seconds(1) { return cached.versions }
        let fresh = try await versions()
        versionCache.withLock { $0 = (fresh, now) }
        return fresh
    }

    /// Applies batches until the tenant's log is exhausted; false if it stopped early.
    @discardableResult
    func catchUp(tenant: TenantID, version: Version, using pool: TenantDatabase? = nil) async throws -> Bool {
        guard let projector = projectors[version.name] else { return true }
        while true {
            let applied = try await applyBatch(tenant: tenant, version: version, projector: projector, using: pool ?? database)
            if applied < batchSize { return true }
            if Task.isCancelled { return false }
        }
    }

    /// One transaction; returns how many events it covered.
    func applyBatch(tenant: TenantID, version: Version, projector: any Projector, using pool: TenantDatabase) async throws -> Int {
        // A platform projection's rows are in the main database for every tenant; a tenant in a
        // database of its own has its events read from there, in a session of their own.
        let platform = version.scope == "platform"
        batchCounts.withLock { $0[version.name, default: 0] += 1 }
        let step = { (what: String) in self.doing(version, "catching up tenant \(tenant): \(what)") }
        defer { doing(version, nil) }
        step("waiting for a connection")
        let applied: [RecordedEvent] = try await (platform ? pool.onControlPlane : pool).withTenant(tenant) { session in
            // Takes the pair's lock, sets the search path, locks the checkpoint; NULL for a
            // tenant purged since this pass listed it.
            step("starting the batch")
            guard let position = try await session.call(
                BeginProjectionBatch(projection: version.name, version: version.version, schema: version.schema(in: session))).first ?? 0
            else { return [] }
            session.afterCommit { [self] in markApplied(version, tenant: tenant, through: position) }
            step(platform && session.home.placement == .database ? "reading the log in its own database" : "reading the log")
            let events = platform && session.home.placement == .database
                ? try await pool.readTenant(tenant, in: session.home) { home in try await store.read(after: position, limit: batchSize, in: home) }
                : try await store.read(after: position, limit: batchSize, in: session)
            guard let last = events.last else { return [] }
            step("applying \(events.count) events")
            try await projector.applyRelevant(events, in: session)
            session.afterCommit { [self] in markApplied(version, tenant: tenant, through: last.seq) }
            step("committing")
            try beforeCommit(tenant, events.count)
            try await session.run("""
                UPDATE projection_checkpoints SET applied_seq = \(last.seq), updated_at = now()
                 WHERE tenant_id = \(session.tenant) AND projection = \(version.name) AND version = \(version.version)
                """)
            return events
        }
        recordLag(of: applied, in: version.name)
        return applied.count
    }

    /// How long after being recorded each event reached the read model (this process's view).
    private func recordLag(of events: [RecordedEvent], in name: String) {
        guard !events.isEmpty else { return }
        let now = Int64(Date().timeIntervalSince1970 * 1_000_000)
        let lags = events.compactMap { event in Timestamps.microseconds(ofStored: event.recordedAtText).map { Double(now - $0) / 1000 } }
        lagSamples.withLock { samples in samples[name, default: LagReservoir()].add(lags) }
        lagObserver?(name, lags.map { $0 / 1000 })
    }

    /// The median and 99th percentile of recent projection lags in milliseconds, and how many
    /// samples they come from; nil before any event was projected by this process.
    public func lag(of name: String) -> (p50: Double, p99: Double, samples: Int)? {
        lagSamples.withLock { $0[name]?.percentiles() }
    }

    /// How long a version is built before it may be served: longer than `cachedVersions` keeps
    /// its answer, so every server's commands catch the version up (it is among the versions
    /// they know) before its views can show it. Without that, a command on a server whose list
    /// is older than the version would catch up only the old one, and its client could fail to
    /// read its own write through the new one.
    static let minimumBuildTime: Duration = .seconds(2)

    private func activateIfCaughtUp(_ version: Version) async throws {
        let seconds = Double(Self.minimumBuildTime.components.seconds)
        let rows = try await client.query("""
            SELECT (SELECT count(*) FROM projection_positions(\(version.name), \(version.version)) WHERE applied_seq < head) = 0
                   AND (SELECT now() - created_at >= make_interval(secs => \(seconds)) FROM projections
                         WHERE name = \(version.name) AND version = \(version.version))
            """, logger: logger)
        guard try await rows.decode(Bool?.self).first(where: { _ in true }) == true else { return }
        // Tenants in databases of their own serve it too: each was caught up in this pass (a
        // sweep). One that cannot be reached now keeps the old version until `petstore migrate`.
        if version.scope == "tenant" {
            var placed: [UUID] = []
            for try await tenant in try await client.query("SELECT tenant_id FROM database_tenants()", logger: logger).decode(UUID.self) {
                placed.append(tenant)
            }
            for tenant in placed {
                do {
                    try await database.withTenant(TenantID(tenant)) { session in
                        try await session.run("SELECT activate_projection(\(version.name), \(version.version))")
                    }
                } catch {
                    logger.warning("a tenant's database did not switch to the new projection version; run petstore migrate",
                                   metadata: ["tenant": "\(tenant)", "projection": "\(version.name)", "error": "\(DatabaseURL.describe(error))"])
                }
            }
        }
        try await client.query("SELECT activate_projection(\(version.name), \(version.version))", logger: logger).consume()
        logger.notice("projection version activated", metadata: ["projection": "\(version.name)", "version": "\(version.version)"])
    }
}

/// `begin_projection_batch(…)`; see Schema/0004_projections.sql.
struct BeginProjectionBatch: TenantFunction {
    static let name = "begin_projection_batch"
    static let parameterTypes = ["text", "text", "text"]
    typealias Row = Int64?

    let projection: String
    let version: String
    let schema: String

    func bind(into bindings: inout PostgresBindings) {
        bindings.append(projection)
        bindings.append(version)
        bindings.append(schema)
    }

    func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Row.self) }
}

/// The start of a command's own projection batch, once the command has appended: the pair lock,
/// then the checkpoint row's (in that order, as `begin_projection_batch` takes them: the join
/// emits the row, and LockRows locks it, only after the lock's CTE has run), and the version's
/// schema first on the search path. No row: the tenant's first batch of the version, which
/// `begin_projection_batch` makes.
///
/// The function's other checks are the append's, made in this transaction under the tenant's head
/// row lock, which a move's switch and a purge both wait for: the fence (the append's update of
/// the head), the tenant's existence (its head), and its copy of every served version (the tenant
/// session refuses a tenant behind on one). A plain statement where the function was eleven:
/// 0.38 -> 0.20 ms a command in `pgbench -r` (bench/RESULTS.md).
struct InlineBatchStart: PostgresPreparedStatement {
    static let name = "inline_batch_start"
    static let sql = """
        WITH locked AS MATERIALIZED (
          SELECT pg_advisory_xact_lock(hashtextextended($2::text || '/' || $3::text || '/' || $1::uuid::text, 0)))
        SELECT c.applied_seq, set_config('search_path', quote_ident($4::text) || ', public', true)
          FROM locked, projection_checkpoints c
         WHERE c.tenant_id = $1::uuid AND c.projection = $2::text AND c.version = $3::text
           FOR UPDATE OF c
        """
    typealias Row = Int64

    let tenant: TenantID
    let projection: String
    let version: String
    let schema: String

    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings()
        bindings.append(tenant)
        bindings.append(projection)
        bindings.append(version)
        bindings.append(schema)
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode((Int64, String).self).0 }
}

/// The most recent lags of one projection, bounded.
struct LagReservoir: Sendable {
    static let capacity = 20_000
    private var values: [Double] = []
    private var next = 0

    mutating func add(_ lags: [Double]) {
        for lag in lags {
            if values.count < Self.capacity {
                values.append(lag)
            } else {
                values[next] = lag
                next = (next + 1) % Self.capacity
            }
        }
    }

    func percentiles() -> (p50: Double, p99: Double, samples: Int)? {
        guard !values.isEmpty else { return nil }
        let sorted = values.sorted()
        func at(_ fraction: Double) -> Double { sorted[min(sorted.count - 1, Int(Double(sorted.count - 1) * fraction))] }
        return (at(0.5), at(0.99), sorted.count)
    }
}

/// Moves a version's checkpoint past what a command applied inline, and the bystanders' (versions
/// that read none of its events) past its events if they were right before them; puts the
/// session's own search path back (the batch start put the version's schema first). Prepared
/// once per connection: every command runs it.
struct InlineCheckpoint: PostgresPreparedStatement {
    static let name = "inline_checkpoint"
    static let sql = """
        WITH moved AS (
          UPDATE projection_checkpoints SET applied_seq = $4, updated_at = now()
           WHERE tenant_id = $1 AND projection = $2 AND version = $3
           RETURNING 1),
        passed AS (
          UPDATE projection_checkpoints SET applied_seq = $9, updated_at = now()
           WHERE tenant_id = $1 AND (projection, version) IN (SELECT * FROM unnest($6::text[], $7::text[])) AND applied_seq = $8
           RETURNING projection)
        SELECT set_config('search_path', $5, true), (SELECT count(*) FROM moved), ARRAY(SELECT projection FROM passed)
        """
    typealias Row = (String, [String])

    let tenant: TenantID
    let projection: String
    let version: String
    let applied: Int64
    let searchPath: String
    let bystanders: [ProjectionRuntime.Version]
    /// The seqs of the command's events: the bystanders move from just before the first to the last.
    let events: ClosedRange<Int64>

    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings()
        bindings.append(tenant)
        bindings.append(projection)
        bindings.append(version)
        bindings.append(applied)
        bindings.append(searchPath)
        bindings.append(bystanders.map(\.name))
        bindings.append(bystanders.map(\.version))
        bindings.append(events.lowerBound - 1)
        bindings.append(events.upperBound)
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> Row {
        let (path, _, passed) = try row.decode((String, Int64, [String]).self)
        return (path, passed)
    }
}
