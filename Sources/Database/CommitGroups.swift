import Foundation
import Logging
import PostgresNIO
import Synchronization

/// Group commit: the units of work of concurrent commands run one after another in one
/// transaction, each in a savepoint of its own, and commit together, so one fsync answers many
/// requests and a tenant's head row is not held through an fsync per command.
///
/// Commands join a group by database and lane (the tenant's lane: a fixed function of its id),
/// so all the commands of one tenant meet in the same lane, where they run in arrival order.
/// A lane runs one group at a time: the next group begins once the previous one has sent its
/// COMMIT, and gathers the commands that arrive meanwhile. Two groups that run at once are in
/// different lanes, so they never hold the same tenant's rows; a command that waits for a lock
/// anyway (another transaction holds it) waits at most `lockTimeout`, then leaves the group and
/// runs alone, so one stalled tenant holds up a group for that long at most.
///
/// A member's failure rolls back its savepoint only: the others commit. Each member is answered
/// after the shared commit; if the commit fails, every member that took part gets that error,
/// as a lone unit of work whose commit failed would.
final class CommitGroups: Sendable {
    /// Where a group runs: a database (`main`, or a server's database of a tenant's own) and a lane.
    struct Key: Hashable, Sendable {
        let database: String
        let lane: Int
    }

    /// Lanes per database: groups that may run side by side. Zero: no groups, every command
    /// commits alone.
    let lanes: Int
    /// Most commands in one group: past it, later arrivals start the next group.
    static let maximumMembers = 64
    /// The longest a command in a group waits for a lock before it runs alone instead.
    static let lockTimeout = "200ms"
    /// The longest a group waits for its connection (the database down, say) before its members
    /// run alone, each within its own request's bounds.
    static let connectionWait: Duration = .seconds(1)
    /// The longest one member may hold the group's connection: past it (a statement that never
    /// answers, a connection the server dropped under it) the group gives up and closes the
    /// connection, so nothing of it commits: the members already run get a 503, those still
    /// waiting run alone.
    static let turnLimit: Duration = .seconds(10)

    private let open = Mutex<[Key: Group]>([:])
    private let logger: Logger
    private let counts = Mutex<(groups: Int, commands: Int)>((0, 0))

    /// Groups that committed some command's work so far, and the commands whose work they committed.
    var committed: (groups: Int, commands: Int) { counts.withLock { $0 } }

    init(lanes: Int, logger: Logger) {
        self.lanes = lanes
        self.logger = logger
    }

    func key(for tenant: TenantID, in home: TenantHome) -> Key {
        let database = home.placement == .database ? "\(home.server)/\(home.location ?? "")" : "main"
        return Key(database: database, lane: Int(tenant.rawValue.uuid.15) % lanes)
    }

    /// Waits for this command's turn in the lane's group: the group's connection, in its
    /// transaction, inside a savepoint that is the command's alone. Nil when the group could not
    /// begin (no connection, say): the command then runs alone. Nil too when the caller's task
    /// is cancelled before its turn.
    ///
    /// `connect` opens a connection to the group's database for the whole group; it is the
    /// first member's, and every member of the group is in that database.
    func turn(
        _ key: Key,
        connect: @escaping @Sendable (_ body: (PostgresConnection) async throws -> Void) async throws -> Void
    ) async -> Turn? {
        // A member whose request is cut off while it waits leaves the group at once: its
        // request's slot is not held by a wait nobody is answered from.
        let joined = Joined()
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (waiter: CheckedContinuation<Turn?, Never>) in
                guard !Task.isCancelled else { return waiter.resume(returning: nil) }
                open.withLock { open in
                    if let group = open[key], group.admit(waiter, ticket: joined.ticket) {
                        joined.group.withLock { $0 = group }
                        return
                    }
                    let group = Group(after: open[key])
                    _ = group.admit(waiter, ticket: joined.ticket)
                    joined.group.withLock { $0 = group }
                    open[key] = group
                    let driver = Task { [self] in
                        // A group whose members all failed or ran alone committed no command.
                        if let commands = await group.run(connect: connect, logger: logger), commands > 0 {
                            counts.withLock { $0.groups += 1; $0.commands += commands }
                        }
                    }
                    Task {
                        try? await Task.sleep(for: CommitGroups.connectionWait)
                        if group.abandonUnlessConnected() {
                            driver.cancel()
                            return
                        }
                        await group.watch()
                    }
                }
                // Cancelled after the check above but before the group was known to the handler.
                if Task.isCancelled { joined.group.withLock { $0 }?.withdraw(joined.ticket) }
            }
        } onCancel: {
            joined.group.withLock { $0 }?.withdraw(joined.ticket)
        }
    }

    /// Which group a waiting member joined, for its cancellation to find it.
    private final class Joined: Sendable {
        let group = Mutex<Group?>(nil)
        var ticket: ObjectIdentifier { ObjectIdentifier(self) }
    }

    /// One member's place in a group: the shared connection until it hands it back.
    struct Turn: Sendable {
        let connection: PostgresConnection
        /// The search path sessions start with on this connection (the member of a shared
        /// tenant after one of a schema tenant must not see that schema first).
        let searchPath: String
        let group: Group
        private let handBack: HandBack

        fileprivate init(connection: PostgresConnection, searchPath: String, group: Group, handBack: HandBack) {
            self.connection = connection
            self.searchPath = searchPath
            self.group = group
            self.handBack = handBack
        }

        /// Gives the connection back to the group; `stands` is false when the member failed and
        /// its savepoint must be rolled back. Called exactly once per turn.
        func done(stands: Bool) {
            handBack.resume(stands)
        }
    }

    /// The end of one member's turn, given once: by the member (whether its work stands), or
    /// by the group's watch (nil: the turn ran past `turnLimit`).
    final class HandBack: Sendable {
        private let waiter = Mutex<CheckedContinuation<Bool?, Never>?>(nil)

        fileprivate func wait(_ continuation: CheckedContinuation<Bool?, Never>) {
            waiter.withLock { $0 = continuation }
        }

        func resume(_ stands: Bool?) {
            waiter.withLock { $0.take() }?.resume(returning: stands)
        }
    }

    /// One transaction shared by its members.
    final class Group: Sendable {
        private enum Connection { case waiting, connected, abandoned }

        private struct State {
            var connection = Connection.waiting
            /// The connection once the group has it, and when its current step (a statement of
            /// its own or a member's turn) began.
            var live: PostgresConnection?
            var stepStarted = ContinuousClock.now
            var turn: HandBack?
            var done = false
            var accepting = true
            var waiting: [(ticket: ObjectIdentifier, waiter: CheckedContinuation<Turn?, Never>)] = []
            var served = 0
            var sentCommit = false
            var sentCommitWaiters: [CheckedContinuation<Void, Never>] = []
            var outcome: Result<Void, any Error>?
            var outcomeWaiters: [CheckedContinuation<Result<Void, any Error>, Never>] = []
        }

        private let state = Mutex(State())
        /// The lane's previous group, which must have sent its COMMIT before this one begins.
        private let previous: Group?

        fileprivate init(after previous: Group?) {
            self.previous = previous
        }

        /// Takes `waiter` into the group if it still takes members.
        fileprivate func admit(_ waiter: CheckedContinuation<Turn?, Never>, ticket: ObjectIdentifier) -> Bool {
            state.withLock { state in
                guard state.accepting, state.served + state.waiting.count < CommitGroups.maximumMembers else { return false }
                state.waiting.append((ticket, waiter))
                return true
            }
        }

        /// Takes a member that has not had its turn out of the group (its request was cancelled).
        fileprivate func withdraw(_ ticket: ObjectIdentifier) {
            let waiter = state.withLock { state in
                state.waiting.firstIndex { $0.ticket == ticket }.map { state.waiting.remove(at: $0).waiter }
            }
            waiter?.resume(returning: nil)
        }

        /// The next member, or nil (the group then takes no more) when none waits.
        private func next() -> CheckedContinuation<Turn?, Never>? {
            state.withLock { state in
                guard !state.waiting.isEmpty else {
                    state.accepting = false
                    return nil
                }
                state.served += 1
                return state.waiting.removeFirst().waiter
            }
        }

        /// Gives up on a group still waiting for its connection (or for the lane's previous group):
        /// its members run alone at once, the lane's next group does not wait for it, and its
        /// own wait is cancelled. False once it has its connection.
        fileprivate func abandonUnlessConnected() -> Bool {
            let abandoned = state.withLock { state in
                guard state.connection == .waiting else { return false }
                state.connection = .abandoned
                return true
            }
            guard abandoned else { return false }
            strand()
            markSentCommit()
            return true
        }

        /// Whether the group may use the connection it got: not if it was given up on meanwhile.
        private func connected(_ connection: PostgresConnection) -> Bool {
            state.withLock { state in
                guard state.connection == .waiting else { return false }
                state.connection = .connected
                state.live = connection
                state.stepStarted = .now
                return true
            }
        }

        /// Until the group ends: ends a step that runs past `turnLimit`. A member's turn is
        /// ended (the group then closes the connection); a statement of the group's own that
        /// does not answer (a connection the server dropped without the client seeing it) is
        /// failed by closing the connection under it.
        fileprivate func watch() async {
            while true {
                try? await Task.sleep(for: .seconds(1))
                let (done, turn, live, started) = state.withLock { ($0.done, $0.turn, $0.live, $0.stepStarted) }
                if done { return }
                guard ContinuousClock.now - started > CommitGroups.turnLimit else { continue }
                if let turn {
                    turn.resume(nil)
                } else if let live {
                    live.close().whenComplete { _ in }
                }
            }
        }

        /// Marks the start of the group's next step (for `watch`); `turn` when it is a member's.
        private func step(_ turn: HandBack? = nil) {
            state.withLock { state in
                state.turn = turn
                state.stepStarted = .now
            }
        }

        /// Members that never got a turn, told to run alone.
        private func strand() {
            let stranded = state.withLock { state in
                state.accepting = false
                defer { state.waiting = [] }
                return state.waiting
            }
            for member in stranded { member.waiter.resume(returning: nil) }
        }

        private func markSentCommit() {
            let waiters = state.withLock { state in
                state.sentCommit = true
                defer { state.sentCommitWaiters = [] }
                return state.sentCommitWaiters
            }
            for waiter in waiters { waiter.resume() }
        }

        private func waitUntilCommitSent() async {
            await withCheckedContinuation { (waiter: CheckedContinuation<Void, Never>) in
                let sent = state.withLock { state in
                    if !state.sentCommit { state.sentCommitWaiters.append(waiter) }
                    return state.sentCommit
                }
                if sent { waiter.resume() }
            }
        }

        private func finish(_ outcome: Result<Void, any Error>) {
            let waiters = state.withLock { state in
                state.outcome = outcome
                state.done = true
                state.turn = nil
                state.live = nil
                defer { state.outcomeWaiters = [] }
                return state.outcomeWaiters
            }
            for waiter in waiters { waiter.resume(returning: outcome) }
        }

        /// Whether the group committed: awaited by members whose work stood.
        func outcome() async -> Result<Void, any Error> {
            await withCheckedContinuation { (waiter: CheckedContinuation<Result<Void, any Error>, Never>) in
                let outcome = state.withLock { state in
                    guard let outcome = state.outcome else {
                        state.outcomeWaiters.append(waiter)
                        return nil as Result<Void, any Error>?
                    }
                    return outcome
                }
                if let outcome { waiter.resume(returning: outcome) }
            }
        }

        /// The group's transaction, in a task of its own so that no member's cancellation (a
        /// request cut off at its deadline) cuts it short. Returns how many members' work it
        /// committed, nil if it did not commit.
        fileprivate func run(
            connect: @Sendable (_ body: (PostgresConnection) async throws -> Void) async throws -> Void, logger: Logger
        ) async -> Int? {
            await previous?.waitUntilCommitSent()
            var members = 0
            var stood = 0
            var committing = false
            do {
                try await connect { connection in
                    guard connected(connection) else { throw CancellationError() }
                    try await connection.query("BEGIN", logger: logger).consume()
                    step()
                    var path = ""
                    // Generic plans: the log's functions otherwise plan their statements afresh on
                    // every call (a custom plan prunes the tenant's partition at planning), which
                    // was a quarter of what a command cost PostgreSQL; a generic plan prunes as it
                    // starts. For the group's transaction only: reads keep custom plans.
                    let rows = try await connection.query("""
                        SELECT current_setting('search_path'), set_config('lock_timeout', \(CommitGroups.lockTimeout), true),
                               set_config('plan_cache_mode', 'force_generic_plan', true)
                        """, logger: logger)
                    for try await (current, _, _) in rows.decode((String, String, String).self) { path = current }
                    do {
                        while let member = next() {
                            do {
                                step()
                                try await connection.query("SAVEPOINT grouped", logger: logger).consume()
                            } catch {
                                member.resume(returning: nil)
                                throw error
                            }
                            members += 1
                            let handBack = HandBack()
                            step(handBack)
                            let stands = await withCheckedContinuation { (waiter: CheckedContinuation<Bool?, Never>) in
                                handBack.wait(waiter)
                                member.resume(returning: Turn(connection: connection, searchPath: path, group: self, handBack: handBack))
                            }
                            step()
                            guard let stands, !connection.isClosed else {
                                // The member may still be using the connection: closing it ends the
                                // transaction on the server, and nothing of the group commits.
                                try? await connection.close()
                                throw DatabaseError(.unreachable, stands == nil
                                    ? "a command held its group's connection past \(CommitGroups.turnLimit)"
                                    : "the group's connection was lost")
                            }
                            // Not released: the next member's savepoint nests in this one, and a
                            // rollback to `grouped` goes back to the newest. Releasing would keep
                            // nothing fewer (a released subtransaction's id stays the parent's
                            // until the commit) and cost a round trip per member.
                            if stands {
                                stood += 1
                            } else {
                                try await connection.query("ROLLBACK TO SAVEPOINT grouped", logger: logger).consume()
                            }
                        }
                    } catch {
                        if !connection.isClosed { try? await connection.query("ROLLBACK", logger: logger).consume() }
                        throw error
                    }
                    markSentCommit()
                    committing = true
                    step()
                    try await connection.query("COMMIT", logger: logger).consume()
                }
                finish(.success(()))
                return stood
            } catch {
                markSentCommit()
                strand()
                if members > 0 {
                    logger.warning("a group of commands did not commit", metadata: ["members": "\(members)", "error": "\(String(reflecting: error))"])
                }
                finish(.failure(GroupFailure(cause: error, duringCommit: committing)))
                return nil
            }
        }
    }
}

/// Why a command's work, which stood in its group, was not committed: the group's transaction
/// failed, before its COMMIT (nothing kept) or during it (the outcome unknown, as for a lone
/// unit of work whose commit was lost).
struct GroupFailure: Error, CarriesDatabaseFault, CustomStringConvertible {
    let cause: any Error
    let duringCommit: Bool

    /// A retry is always safe but for a connection lost on the COMMIT's way: then the work
    /// may have been kept, and a retry needs its `Idempotency-Key`.
    var databaseFault: DatabaseFault? {
        duringCommit && DatabaseFault.classify(cause) == .unavailable ? .outcomeUnknown : .unavailable
    }

    var description: String {
        "the group of commands this one committed with \(duringCommit ? "lost its COMMIT" : "failed before its COMMIT"): \(DatabaseURL.describe(cause))"
    }
}
