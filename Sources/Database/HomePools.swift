import Foundation
import Logging
import PostgresNIO
import Synchronization

/// Connections to databases of their own (a tenant placed in a database on some server), with a
/// bound per server however many databases it holds.
///
/// A connection belongs to one database, so each database gets a pool of its own: at most
/// `perDatabase` connections, the first `warm` of them kept while the pool is in use and the
/// others closed after `idleTimeout` unused, and the pool itself closed once nobody has used it
/// for `idleTimeout`. A server keeps at most
/// `perServer` such pools open; asking for another closes the least recently used idle one, and
/// waits (up to `wait`) while all of them are busy. A server holding 500 tenant databases is
/// thus never asked for more than `perServer × perDatabase` connections by this process, and
/// holds none for the databases nobody uses.
public actor HomePools {
    public struct Limits: Sendable {
        public var perDatabase: Int
        public var perServer: Int
        public var idleTimeout: Duration
        public var wait: Duration
        /// Connections a pool keeps open (PostgresNIO's minimum) while it is in use. Every other
        /// connection handed back idle starts PostgresNIO's idle timer (a task group of two tasks
        /// and a dispatch timer, cancelled by the next lease): a fifth of a read's cost under
        /// bench/peer.sh's load. These are handed back without one, and closed with the pool.
        public var warm: Int

        /// `idleTimeout` is short because every connection beyond the warm ones handed back
        /// idle starts the pool's idle timer, whose sleeping task stays in memory for the whole
        /// timeout even once the connection is taken again: at 10 s, about 11 MB more under
        /// bench/peer.sh's reads.
        public init(perDatabase: Int = 8, perServer: Int = 24, idleTimeout: Duration = .seconds(2), wait: Duration = .seconds(5), warm: Int = 2) {
            self.perDatabase = perDatabase
            self.perServer = perServer
            self.idleTimeout = idleTimeout
            self.wait = wait
            self.warm = min(warm, perDatabase)
        }
    }

    struct Key: Hashable {
        let server: String
        let database: String
    }

    struct Pool {
        let client: PostgresClient
        let running: Task<Void, Never>
        var inFlight = 0
        var lastUsed: ContinuousClock.Instant
        /// Whether a look at whether it has been idle for `idleTimeout` is scheduled.
        var idleCheck = false
    }

    /// The URL of a server's login (credentials included) by the server's name.
    public typealias Directory = @Sendable (String) async throws -> DatabaseURL

    let limits: Limits
    /// The fingerprint of the build this process serves (schema and projections): a tenant
    /// whose database its ledger does not record as brought to it is behind, and refused.
    /// Nil checks nothing.
    public nonisolated let build: String?
    let directory: Directory
    let timeouts: StatementTimeouts?
    let logger: Logger
    private var pools: [Key: Pool] = [:]
    /// Pools being closed, per server: counted against its bound until their connections are gone.
    private var closing: [String: Int] = [:]
    private var waiters: [CheckedContinuation<Void, Never>] = []
    /// Databases on their way out (a purge drops them next): never pooled again by this process.
    private var retired: Set<Key> = []
    private var isShutDown = false
    /// Bounds every lease's wait for a connection.
    private nonisolated let deadlines = DeadlineTimer(resolution: .milliseconds(50))
    /// Leases handed over by a task of their own (those whose caller is not cancelled in time).
    private nonisolated let handoffs = Atomic<Int>(0)
    package nonisolated var handedOffLeases: Int { handoffs.load(ordering: .relaxed) }

    public init(limits: Limits = Limits(), timeouts: StatementTimeouts? = nil, build: String? = nil, logger: Logger, directory: @escaping Directory) {
        self.limits = limits
        self.build = build
        self.timeouts = timeouts
        self.logger = logger
        self.directory = directory
    }

    /// Runs `body` on a connection to `database` on `server`.
    public func withConnection<Result: Sendable>(
        server: String, database: String, _ body: @Sendable (PostgresConnection) async throws -> Result
    ) async throws -> Result {
        try await withLeasedConnection(server: server, database: database) { try await body($0) }
    }

    /// Runs `body` on a connection of the pool of `database` on `server`, given within
    /// `limits.wait` or this throws. A pool keeps trying to connect to a database that was
    /// dropped or a server that is down until its circuit breaker trips, a minute later, and
    /// holds whoever waits for a connection until then; a caller here waits `wait`.
    ///
    /// A caller whose own task is cancelled within `wait` (a request, at its deadline) leases
    /// the connection itself. For any other, a task of its own leases it, hands it over and
    /// keeps it leased until `body` returns, so the wait is bounded without a probe lease
    /// before the real one.
    public func withLeasedConnection<Result>(
        server: String, database: String,
        isolation: isolated (any Actor)? = #isolation,
        _ body: (PostgresConnection) async throws -> sending Result
    ) async throws -> sending Result {
        let key = Key(server: server, database: database)
        let client = try await checkOut(key)
        if let cancelled = TaskDeadline.current, cancelled <= .now + limits.wait {
            return try await withDirectLease(key, client, isolation: isolation, body)
        }
        handoffs.add(1, ordering: .relaxed)
        let handoff = Handoff(deadlines)
        let connection: PostgresConnection
        do {
            connection = try await handoff.lease(client, within: limits.wait)
        } catch is Handoff.TimedOut {
            await leaseFailed(key, client)
            throw DatabaseError(.unreachable, "database \(key.database) on server \(key.server) gave no connection within \(limits.wait)")
        } catch {
            await checkIn(key)
            throw error
        }
        do {
            let result = try await body(connection)
            handoff.release()
            await checkIn(key)
            return result
        } catch {
            handoff.release()
            await checkIn(key)
            throw error
        }
    }

    /// A lease in the caller's own task, which whoever started it cancels no later than `wait`
    /// from now (a request at its deadline): the pool ends a wait for a connection on
    /// cancellation, so no task of its own has to bound it. A tenth or more of a read's cost
    /// under bench/peer.sh's load.
    private func withDirectLease<Result>(
        _ key: Key, _ client: PostgresClient,
        isolation: isolated (any Actor)?,
        _ body: (PostgresConnection) async throws -> sending Result
    ) async throws -> sending Result {
        var leased = false
        do {
            let result = try await client.withConnection(isolation: isolation) { connection in
                leased = true
                return try await body(connection)
            }
            await checkIn(key)
            return result
        } catch {
            if !leased, Task.isCancelled { await leaseFailed(key, client) } else { await checkIn(key) }
            throw error
        }
    }

    /// A lease that timed out: the pool is checked in and, when nobody else holds it, closed
    /// (it would keep trying to connect in the background, for nobody).
    private func leaseFailed(_ key: Key, _ client: PostgresClient) async {
        checkIn(key)
        if let pool = pools[key], pool.inFlight == 0, pool.client === client { await close(server: key.server, database: key.database) }
    }

    /// The login for `server`, which may create databases there (onboarding makes one per tenant).
    public nonisolated func url(of server: String) async throws -> DatabaseURL {
        try await directory(server)
    }

    /// How many pools are open on `server` now.
    public func openPools(on server: String) -> Int {
        pools.keys.filter { $0.server == server }.count
    }

    /// Closes the pool of `database` on `server`, if open, and waits for its connections to
    /// close: before the database is dropped. Work holding it is not waited for (the drop ends
    /// its connections).
    public func close(server: String, database: String) async {
        guard let pool = pools.removeValue(forKey: Key(server: server, database: database)) else { return }
        await stop(pool, server: server, database: database)
    }

    /// Cancels a pool and waits for its connections to close, at most `limits.wait`: a pool
    /// was seen never to finish closing once its database was being dropped under it, with
    /// no connection left, and a purge waiting on it waited for good. One that overstays is
    /// left to finish on its own, no longer counted against the server.
    private func stop(_ pool: Pool, server: String, database: String) async {
        closing[server, default: 0] += 1
        pool.running.cancel()
        if await !finished(pool.running, within: limits.wait) {
            logger.warning("a database pool did not close in time; left to close on its own",
                           metadata: ["server": "\(server)", "database": "\(database)", "wait": "\(limits.wait)"])
        }
        closing[server, default: 0] -= 1
    }

    /// Closes the pool of `database` on `server` for good, before the database is dropped: from
    /// now on a lease of it fails at once. Without this, a task that asks for the database
    /// between the close and the drop opens a new pool, whose connection the drop then ends;
    /// its next lease waits on a pool that retries a database that no longer exists until the
    /// pool's circuit breaker trips, a minute or more later. A tenant's database name is its
    /// id, never given to another tenant.
    public func retire(server: String, database: String) async {
        retired.insert(Key(server: server, database: database))
        await close(server: server, database: database)
    }

    /// Lets `database` on `server` be pooled again: a tenant that left its database of its own
    /// (which was dropped) and moves back into one gets it under the same name.
    public func reinstate(server: String, database: String) {
        retired.remove(Key(server: server, database: database))
    }


    /// Closes every pool; a later lease opens its pool again.
    public func closeAll() {
        for pool in pools.values { pool.running.cancel() }
        pools.removeAll()
    }

    /// Closes every pool for good, the server's last use of them: a later lease fails at once
    /// rather than open a pool nobody will close.
    public func shutDown() {
        isShutDown = true
        closeAll()
    }

    private func checkOut(_ key: Key) async throws -> PostgresClient {
        let deadline = ContinuousClock.now + limits.wait
        while true {
            if isShutDown {
                throw DatabaseError(.unreachable, "database \(key.database) on server \(key.server): the server is shutting down")
            }
            if retired.contains(key) {
                throw DatabaseError(.unreachable, "database \(key.database) on server \(key.server) has been removed")
            }
            if var pool = pools[key] {
                pool.inFlight += 1
                pool.lastUsed = .now
                pools[key] = pool
                return pool.client
            }
            let open = pools.filter { $0.key.server == key.server }
            if open.count + closing[key.server, default: 0] < limits.perServer {
                let url = try await directory(key.server).with(database: key.database)
                // Other tasks may have opened pools (or retired this one) while this one read the directory.
                if pools[key] != nil || retired.contains(key) || pools.keys.filter({ $0.server == key.server }).count + closing[key.server, default: 0] >= limits.perServer {
                    continue
                }
                var configuration = url.clientConfiguration(maximumConnections: limits.perDatabase, pool: "home", timeouts: timeouts)
                configuration.options.connectionIdleTimeout = limits.idleTimeout
                // No keep-alives: a connection idle for `idleTimeout` is closed long before the
                // first one (30 s) would run, yet every connection handed back would schedule
                // one, whose task stays in memory for the whole 30 s though the timer is
                // cancelled when the connection is taken again.
                configuration.options.keepAliveBehavior = nil
                configuration.options.minimumConnections = limits.warm
                let client = PostgresClient(configuration: configuration, backgroundLogger: logger)
                // Detached: these pools end when this actor closes them. A task of the caller's
                // would inherit its graceful shutdown, and a pool opened then (a projection pass
                // finishing at shutdown) would stop before its first connection, leaving its
                // caller to wait out `limits.wait`.
                let (started, signal) = AsyncStream<Void>.makeStream()
                pools[key] = Pool(client: client, running: Task.detached { signal.finish(); await client.run() }, inFlight: 1, lastUsed: .now)
                // Handed out once its task is under way: a lease that reaches the client before
                // `run()` does is served all the same, but logs a warning, once per pool opened.
                for await _ in started {}
                return client
            }
            if let idle = open.filter({ $0.value.inFlight == 0 }).min(by: { $0.value.lastUsed < $1.value.lastUsed }) {
                // Its connections count against the server until they are closed.
                pools[idle.key] = nil
                await stop(idle.value, server: key.server, database: idle.key.database)
                continue
            }
            guard ContinuousClock.now < deadline else {
                throw DatabaseError(.unreachable, "all \(limits.perServer) database pools on server \(key.server) are busy")
            }
            await waitForCheckIn(until: deadline)
        }
    }

    private func checkIn(_ key: Key) {
        guard var pool = pools[key] else { return }
        pool.inFlight -= 1
        pool.lastUsed = .now
        if pool.inFlight == 0, !pool.idleCheck {
            pool.idleCheck = true
            checkIdle(key, after: limits.idleTimeout)
        }
        pools[key] = pool
        let woken = waiters
        waiters.removeAll()
        for waiter in woken { waiter.resume() }
    }

    /// At most one look per pool is pending: it closes the pool if nobody has used it for
    /// `idleTimeout` (its warm connections never close on their own), looks again later if it
    /// was used since but is idle now, and leaves the next look to the next check-in otherwise.
    private nonisolated func checkIdle(_ key: Key, after delay: Duration) {
        _ = deadlines.schedule(after: delay) { Task { await self.lookAtIdle(key) } }
    }

    private func lookAtIdle(_ key: Key) async {
        guard var pool = pools[key] else { return }
        let idleFor = ContinuousClock.now - pool.lastUsed
        if pool.inFlight == 0, idleFor >= limits.idleTimeout {
            await close(server: key.server, database: key.database)
            return
        }
        pool.idleCheck = pool.inFlight == 0
        pools[key] = pool
        if pool.idleCheck { checkIdle(key, after: limits.idleTimeout - idleFor) }
    }

    private func waitForCheckIn(until deadline: ContinuousClock.Instant) async {
        // Woken by the next check-in, or by the deadline, whichever comes first.
        let timer = Task { [weak self] in
            try? await Task.sleep(until: deadline, clock: .continuous)
            await self?.wakeAll()
        }
        await withCheckedContinuation { waiters.append($0) }
        timer.cancel()
    }

    private func wakeAll() {
        let woken = waiters
        waiters.removeAll()
        for waiter in woken { waiter.resume() }
    }
}

/// Whether `task` ends within `wait`; waits no longer than that either way.
package func finished<Success: Sendable, Failure: Error>(_ task: Task<Success, Failure>, within wait: Duration) async -> Bool {
    await withCheckedContinuation { continuation in
        let once = ResumeOnce(continuation)
        Task { _ = await task.result; once.resume(true) }
        Task { try? await Task.sleep(for: wait); once.resume(false) }
    }
}

/// A continuation resumed by whichever of its racers comes first.
private final class ResumeOnce: Sendable {
    private let continuation: Mutex<CheckedContinuation<Bool, Never>?>

    init(_ continuation: CheckedContinuation<Bool, Never>) {
        self.continuation = Mutex(continuation)
    }

    func resume(_ value: Bool) {
        continuation.withLock { $0.take() }?.resume(returning: value)
    }
}

/// One connection leased by a task of its own and handed to a caller that waits for it a
/// bounded time: the task keeps the lease until the caller releases it, and gives the connection
/// straight back if the caller stopped waiting (timed out, or cancelled) before it came.
private final class Handoff: Sendable {
    struct TimedOut: Error {}

    private let deadlines: DeadlineTimer
    private let answer = Mutex<CheckedContinuation<PostgresConnection, any Error>?>(nil)
    private let released = Mutex<(done: Bool, waiter: CheckedContinuation<Void, Never>?)>((false, nil))
    private let tasks = Mutex<(leaser: Task<Void, Never>?, deadline: UInt64?)>((nil, nil))

    init(_ deadlines: DeadlineTimer) {
        self.deadlines = deadlines
    }

    func lease(_ client: PostgresClient, within wait: Duration) async throws -> PostgresConnection {
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<PostgresConnection, any Error>) in
                answer.withLock { $0 = continuation }
                guard !Task.isCancelled else { return fail(CancellationError()) }
                let leaser = Task {
                    do {
                        try await client.withConnection { connection in
                            guard self.give(connection) else { return }
                            await self.untilReleased()
                        }
                    } catch {
                        self.fail(error)
                    }
                }
                let deadline = deadlines.schedule(after: wait) { self.fail(TimedOut()) }
                tasks.withLock { $0 = (leaser, deadline) }
                // The connection may have come (or the wait failed) before the deadline was stored.
                if answer.withLock({ $0 == nil }) { deadlines.cancel(deadline) }
            }
        } onCancel: {
            fail(CancellationError())
        }
    }

    /// Hands `connection` to the caller; false when the caller no longer waits for it.
    private func give(_ connection: PostgresConnection) -> Bool {
        guard let waiting = answer.withLock({ $0.take() }) else { return false }
        if let deadline = tasks.withLock({ $0.deadline }) { deadlines.cancel(deadline) }
        waiting.resume(returning: connection)
        return true
    }

    /// Ends the caller's wait with `error` (a lease still under way is cancelled).
    private func fail(_ error: any Error) {
        guard let waiting = answer.withLock({ $0.take() }) else { return }
        let (leaser, deadline) = tasks.withLock { $0 }
        leaser?.cancel()
        if let deadline { deadlines.cancel(deadline) }
        waiting.resume(throwing: error)
    }

    /// The caller is done with the connection: the leasing task gives it back to the pool.
    func release() {
        let waiter = released.withLock { state in
            state.done = true
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }

    private func untilReleased() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let done = released.withLock { state in
                if !state.done { state.waiter = continuation }
                return state.done
            }
            if done { continuation.resume() }
        }
    }
}

