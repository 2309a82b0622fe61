import Foundation
import Logging
import PostgresNIO
import Synchronization

/// Connections to databases of their own (a tenant placed in a database on some server), with a
/// bound per server however many databases it holds.
///
/// A connection belongs to one database, so each database gets a pool of its own: at most
/// `perDatabase` connections, each closed after `idleTimeout` unused. A server keeps at most
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

        public init(perDatabase: Int = 8, perServer: Int = 24, idleTimeout: Duration = .seconds(10), wait: Duration = .seconds(5)) {
            self.perDatabase = perDatabase
            self.perServer = perServer
            self.idleTimeout = idleTimeout
            self.wait = wait
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
        let client = try await lease(server: server, database: database)
        defer { release(server: server, database: database) }
        return try await client.withConnection { try await body($0) }
    }

    /// The pool of `database` on `server`, held until `release` (which must follow, once): for
    /// callers whose work on its connections cannot cross into this actor. It has given a
    /// connection within `limits.wait`, or this throws (and releases it).
    public func lease(server: String, database: String) async throws -> PostgresClient {
        let key = Key(server: server, database: database)
        let client = try await checkOut(key)
        do {
            try await Self.answers(client, within: limits.wait, key)
        } catch {
            checkIn(key)
            // A pool that cannot connect keeps trying in the background; nobody needs it now.
            if let pool = pools[key], pool.inFlight == 0, pool.client === client { await close(server: server, database: database) }
            throw error
        }
        return client
    }

    /// Whether the pool gives a connection in time. A pool keeps trying to connect to a database
    /// that was dropped or a server that is down until its circuit breaker trips, a minute
    /// later, and holds whoever waits for a connection until then; a caller here waits `wait`.
    /// Costs a lease and its release: the connection stays open for the caller's own lease.
    private static func answers(_ client: PostgresClient, within wait: Duration, _ key: Key) async throws {
        // Not a task group: a group waits for its every child, and a lease that missed its
        // cancellation (one asked for just as it was cancelled) would hold this wait forever.
        let probe = Task { try await client.withConnection { _ in } }
        let connected = await Self.finished(probe, within: wait)
        probe.cancel()
        guard connected else {
            throw DatabaseError(.unreachable, "database \(key.database) on server \(key.server) gave no connection within \(wait)")
        }
    }

    public func release(server: String, database: String) {
        checkIn(Key(server: server, database: database))
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
        if await !Self.finished(pool.running, within: limits.wait) {
            logger.warning("a database pool did not close in time; left to close on its own",
                           metadata: ["server": "\(server)", "database": "\(database)", "wait": "\(limits.wait)"])
        }
        closing[server, default: 0] -= 1
    }

    /// Whether `task` ends within `wait`; waits no longer than that either way.
    private static func finished<Success: Sendable, Failure: Error>(_ task: Task<Success, Failure>, within wait: Duration) async -> Bool {
        await withCheckedContinuation { continuation in
            let once = ResumeOnce(continuation)
            Task { _ = await task.result; once.resume(true) }
            Task { try? await Task.sleep(for: wait); once.resume(false) }
        }
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


    /// Closes every pool (at shutdown).
    public func closeAll() {
        for pool in pools.values { pool.running.cancel() }
        pools.removeAll()
    }

    private func checkOut(_ key: Key) async throws -> PostgresClient {
        let deadline = ContinuousClock.now + limits.wait
        while true {
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
                let client = PostgresClient(configuration: configuration, backgroundLogger: logger)
                pools[key] = Pool(client: client, running: Task { await client.run() }, inFlight: 1, lastUsed: .now)
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
        pools[key] = pool
        let woken = waiters
        waiters.removeAll()
        for waiter in woken { waiter.resume() }
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

/// A continuation resumed by whichever of its racers comes first.
package final class ResumeOnce: Sendable {
    private let continuation: Mutex<CheckedContinuation<Bool, Never>?>

    package init(_ continuation: CheckedContinuation<Bool, Never>) {
        self.continuation = Mutex(continuation)
    }

    package func resume(_ value: Bool) {
        continuation.withLock { $0.take() }?.resume(returning: value)
    }
}
