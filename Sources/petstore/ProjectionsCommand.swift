import API
import ArgumentParser
import Database
import EventLog
import Foundation
import Operations
import PostgresNIO
import Projectors
import ServiceLifecycle

#if canImport(Glibc)
import Glibc
#endif

struct ProjectionsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "projections",
        abstract: "Inspect and rebuild read-model projections.",
        subcommands: [Status.self, Rebuild.self]
    )

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Each projection version: state, tenants, events applied and lag.")
        @OptionGroup var options: CommonOptions

        func run() async throws {
            let statuses = try await options.withDependencies { try await $0.runtime.status() }
            print("projection\tversion\tstate\ttenants\tbehind\tapplied\tlag")
            for status in statuses {
                print("\(status.name)\t\(status.version)\t\(status.state)\t\(status.tenants)\t\(status.tenantsBehind)\t\(status.applied)\t\(status.lag)")
            }
        }
    }

    struct Rebuild: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Rebuild a projection from the log, for one tenant or all; each tenant is swapped in one transaction."
        )
        @OptionGroup var options: CommonOptions
        @Argument(help: "pets or tenant_config") var name: String
        @Option(help: "Only this tenant.") var tenant: String?

        func run() async throws {
            let (name, slug) = (name, tenant)
            let progress = ProgressBar(label: "rebuilding \(name)")
            try await options.withDependencies { dependencies in
                var only: TenantID?
                if let slug {
                    guard let record = try await dependencies.catalog.tenant(slug: slug) else { throw ValidationError("no tenant with slug '\(slug)'") }
                    only = record.id
                }
                try await dependencies.runtime.rebuild(name, tenant: only) { done, total in progress.update(done, of: total) }
            }
            progress.finish()
            print("rebuilt \(name)")
        }
    }
}

struct ProjectorsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "projectors",
        abstract: "Run the projectors alone (no HTTP), e.g. as a separate worker process.",
        subcommands: [Run.self]
    )

    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Keep every projection up to date until SIGINT or SIGTERM.")
        @OptionGroup var options: CommonOptions

        func run() async throws {
            let logger = options.bootstrapLogging()
            let target = try await options.database(logger: logger)
            defer { target.stopClusterIfOurs() }
            try await Migrator().migrate(target.ownerURL, logger: logger)
            try await ProjectionInstaller().install(target.ownerURL, logger: logger)
            let client = PostgresClient(configuration: target.appURL.clientConfiguration(maximumConnections: 4), backgroundLogger: logger)
            let dependencies = AppDependencies(client: client, migrator: try Migrator(), ownerURL: target.ownerURL, logger: logger)
            let group = ServiceGroup(configuration: .init(
                services: [
                    .init(service: client),
                    .init(service: NotificationRelay(client: client, signal: dependencies.store.signal, logger: logger)),
                    .init(service: dependencies.runtime),
                ],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger
            ))
            try await group.run()
        }
    }
}

/// A one-line progress bar on a terminal; silent when output is redirected.
final class ProgressBar: Sendable {
    let label: String
    let isTerminal = isatty(STDOUT_FILENO) == 1

    init(label: String) { self.label = label }

    func update(_ done: Int, of total: Int) {
        guard isTerminal, total > 0 else { return }
        let width = 30
        let filled = done * width / total
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
        FileHandle.standardOutput.write(Data("\r\(label) [\(bar)] \(done)/\(total) tenants".utf8))
    }

    func finish() {
        if isTerminal { FileHandle.standardOutput.write(Data("\n".utf8)) }
    }
}
