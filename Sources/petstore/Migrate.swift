import ArgumentParser
import Database
import Foundation
import Logging
import Operations
import PostgresNIO
import Projectors
import Synchronization

struct Migrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Bring the control plane and every tenant to this build's Schema/ and Projections/, and exit.",
        discussion: """
            First the control plane (pending Schema/ migrations, new Projections/ versions), then every \
            tenant with data of its own: a schema tenant gets its copy of each projection version, filled \
            from its log. What each tenant has is kept in a ledger, so a run with nothing to do is quick, \
            and a run that was stopped (even with kill -9) is finished by the next one. A tenant that fails \
            is reported and the others go on; the exit code is then 1.
            """
    )

    @OptionGroup var options: CommonOptions

    @Option(help: "How many tenants to migrate at a time.")
    var jobs: Int = 4

    @Flag(help: "List what would run, for the control plane and per tenant, and change nothing.")
    var dryRun = false

    @Option(help: "Migrate only the tenant with this slug (after the control plane).")
    var tenant: String?

    func validate() throws {
        guard (1 ... 64).contains(jobs) else { throw ValidationError("--jobs must be between 1 and 64") }
    }

    func run() async throws {
        let logger = options.bootstrapLogging()
        let target = try await options.database(logger: logger)
        defer { target.stopClusterIfOurs() }
        let migrator = try Migrator()
        let installer = ProjectionInstaller()
        var upcoming: [ProjectionDefinition] = []
        if dryRun {
            let status = try await target.ownerURL.withConnection(logger: logger) { try await migrator.status(on: $0, logger: logger) }
            print(status.pending.isEmpty ? "control plane: schema is up to date"
                  : "control plane: would apply " + status.pending.map(\.name).joined(separator: ", "))
            upcoming = try await installer.pending(target.ownerURL, logger: logger)
            print(upcoming.isEmpty ? "control plane: projections are up to date"
                  : "control plane: would install projection version(s) " + upcoming.map { "\($0.name) \($0.version)" }.joined(separator: ", "))
            if !status.pending.isEmpty {
                print("tenants: listed once the control plane is migrated (their ledger comes with it)")
                return
            }
        } else {
            let applied = try await migrator.migrate(target.ownerURL, logger: logger)
            let installed = try await installer.install(target.ownerURL, logger: logger)
            print(applied.isEmpty ? "control plane: schema is up to date"
                  : "control plane: applied \(applied.count) migration(s): " + applied.map(\.name).joined(separator: ", "))
            print(installed.isEmpty ? "control plane: projections are up to date"
                  : "control plane: installed projection version(s) " + installed.map { "\($0.name) \($0.version)" }.joined(separator: ", "))
        }

        let client = PostgresClient(configuration: target.appURL.clientConfiguration(maximumConnections: jobs + 2), backgroundLogger: logger)
        let failed = try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            defer { group.cancelAll() }
            return try await migrateTenants(client: client, owner: target.ownerURL, upcoming: upcoming, logger: logger)
        }
        if failed > 0 { throw ExitCode(1) }
    }

    /// Returns how many tenants failed.
    private func migrateTenants(client: PostgresClient, owner: DatabaseURL, upcoming: [ProjectionDefinition], logger: Logger) async throws -> Int {
        let migrator = TenantMigrator(client: client, owner: owner, logger: logger)
        let started = ContinuousClock.now
        let plans = try await migrator.plans(only: tenant, including: upcoming)
        if let tenant, plans.isEmpty { throw ValidationError("no tenant has the slug '\(tenant)'") }
        let work = plans.filter { !$0.missing.isEmpty }
        let shared = plans.filter { $0.placement == "shared" }.count
        if dryRun {
            for plan in work {
                print("tenant \(plan.slug) (\(plan.placement)): would copy and fill " + plan.missing.map(\.description).joined(separator: ", "))
            }
            print("tenants: \(work.count) of \(plans.count) would be migrated (\(shared) in the shared tables, migrated with the control plane)")
            return 0
        }
        let bar = ProgressLine(total: work.count)
        let outcomes = await migrator.run(work, jobs: jobs) { outcome in bar.record(outcome) }
        bar.finish()
        let failures = outcomes.filter { !$0.succeeded }
        for failure in failures {
            print("tenant \(failure.plan.slug): FAILED: \(failure.error.map { String(describing: $0) } ?? "")")
        }
        let elapsed = (ContinuousClock.now - started).components
        let seconds = Double(elapsed.seconds) + Double(elapsed.attoseconds) / 1e18
        print("tenants: \(work.count - failures.count) migrated, \(failures.count) failed, \(plans.count - work.count) already up to date "
              + "(\(shared) in the shared tables), in \(String(format: "%.2f", seconds)) s")
        guard failures.isEmpty else {
            print("projections: new versions are served once every tenant is migrated; run petstore migrate again")
            return failures.count
        }
        // One tenant's run leaves the switch to a run over all of them.
        guard tenant == nil else { return 0 }
        // New versions are built beside the served ones (the servers still running keep both up
        // to date) and switched to here, so the new build's servers start on complete read models.
        let reported = Mutex<Set<String>>([])
        try await migrator.finishBuilding { building in
            for version in building where reported.withLock({ $0.insert("\(version.name) \(version.version)").inserted }) {
                print("projections: building \(version.name) \(version.version) beside the served version")
            }
        }
        for version in reported.withLock({ $0 }).sorted() { print("projections: \(version) is served") }
        return 0
    }
}

/// Progress on a terminal as one redrawn bar; elsewhere (a log, CI) one line per tenant.
final class ProgressLine: Sendable {
    let total: Int
    let isTerminal = isatty(STDOUT_FILENO) == 1
    private let counts = Mutex<(done: Int, failed: Int)>((0, 0))

    init(total: Int) {
        self.total = total
    }

    func record(_ outcome: TenantMigrator.Outcome) {
        let (done, failed) = counts.withLock { counts in
            counts.done += 1
            if !outcome.succeeded { counts.failed += 1 }
            return counts
        }
        if isTerminal {
            let width = 30, filled = total == 0 ? width : width * done / total
            let line = "\r[" + String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled) + "] \(done)/\(total) tenants"
                + (failed > 0 ? ", \(failed) failed" : "")
            FileHandle.standardOutput.write(Data(line.utf8))
        } else {
            let what = outcome.plan.missing.map(\.description).joined(separator: ", ")
            print("[\(done)/\(total)] tenant \(outcome.plan.slug): " + (outcome.succeeded ? "migrated (\(what))" : "failed"))
        }
    }

    func finish() {
        if isTerminal && total > 0 { print("") }
    }
}
