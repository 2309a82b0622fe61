import API
import ArgumentParser
import Domain
import EventLog
import Foundation
import Operations
import Tenancy

struct TenantCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tenant",
        abstract: "Create, list, show and change tenants.",
        subcommands: [Create.self, List.self, Show.self, Update.self, Offboard.self, Move.self, Purge.self, Receipt.self, ReleaseSlug.self, EraseSubject.self]
    )

    static let cliMetadata = EventMetadata(actor: "cli:\(ProcessInfo.processInfo.userName)")

    static func describe(_ tenant: TenantRecord) -> String {
        "\(tenant.slug)\t\(tenant.id)\t\(tenant.plan.rawValue)\t\(tenant.status.rawValue)\t\(tenant.placement.rawValue)\t\(tenant.server)\t\(tenant.name)"
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Onboard a tenant and print its first admin API key (shown once).")

        @OptionGroup var options: CommonOptions
        @Option var slug: String
        @Option var name: String
        @Option(help: "free, basic, premium or enterprise.") var plan: String = "free"
        @Option(help: "shared, schema or database; default from the plan.") var placement: String?
        @Option(help: "For placement database: the registered server to make the tenant's database on (default main).") var server: String?
        @Option(name: .customLong("admin-email")) var adminEmail: String?

        func run() async throws {
            guard let plan = Plan(rawValue: plan) else { throw ValidationError("plan must be free, basic, premium or enterprise") }
            let placement = try placement.map { raw -> Placement in
                guard let value = Placement(rawValue: raw) else { throw ValidationError("placement must be shared, schema or database") }
                return value
            }
            let problems = Tenant.validateSlug(slug)
            guard problems.isEmpty else { throw ValidationError("slug \(problems.map(\.message).joined(separator: "; "))") }
            // Before the tenant exists: a refusal while provisioning would leave it half made.
            if let adminEmail {
                var validation = Validation()
                _ = validation.email(adminEmail)
                if let problem = validation.errors.first { throw ValidationError("--admin-email \(problem.message)") }
            }
            let (slug, name, adminEmail, server) = (slug, name, adminEmail, server)
            let (tenant, key, resumed) = try await options.withDependencies { dependencies in
                // The same slug again, while its first onboarding is unfinished, resumes it.
                let outcome = try await dependencies.onboarding.run(slug: slug, name: name, plan: plan, placement: placement,
                                                                    server: server, adminEmail: adminEmail ?? "admin@\(slug).petstore.invalid",
                                                                    metadata: TenantCommand.cliMetadata)
                return (outcome.tenant, outcome.adminKey, outcome.resumed)
            }
            if resumed { print("resumed the unfinished onboarding of \(tenant.slug)") }
            print(TenantCommand.describe(tenant))
            if let key { print("admin API key (shown once): \(key.value)") }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List tenants: slug, id, plan, status, placement, server, name.")
        @OptionGroup var options: CommonOptions

        func run() async throws {
            let tenants = try await options.withDependencies { try await $0.catalog.tenants(limit: 10_000) }
            for tenant in tenants { print(TenantCommand.describe(tenant)) }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one tenant with its users and keys.")
        @OptionGroup var options: CommonOptions
        @Argument var slug: String

        func run() async throws {
            let slug = slug
            let (tenant, state) = try await options.withDependencies { dependencies -> (TenantRecord?, TenantState?) in
                guard let tenant = try await dependencies.catalog.tenant(slug: slug) else { return (nil, nil) }
                return (tenant, try await dependencies.tenants.state(of: tenant.id))
            }
            guard let tenant else { throw ValidationError("no tenant with slug '\(slug)'") }
            print(TenantCommand.describe(tenant))
            for user in state?.users.values.sorted(by: { $0.email < $1.email }) ?? [] {
                print("user\t\(user.id.uuidString.lowercased())\t\(user.email)\t\(user.role.rawValue)")
            }
            for key in state?.apiKeys.values.sorted(by: { $0.prefix < $1.prefix }) ?? [] {
                print("key\t\(key.prefix)\t\(key.role.rawValue)\t\(key.revoked ? "revoked" : "active")")
            }
        }
    }

    struct Update: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Change a tenant's plan or status (active, suspended).")
        @OptionGroup var options: CommonOptions
        @Argument var slug: String
        @Option var plan: String?
        @Option var status: String?

        func run() async throws {
            let newPlan = try plan.map { raw -> Plan in
                guard let value = Plan(rawValue: raw) else { throw ValidationError("plan must be free, basic, premium or enterprise") }
                return value
            }
            guard status == nil || ["active", "suspended"].contains(status!) else { throw ValidationError("status must be active or suspended") }
            let (slug, status) = (slug, status)
            let tenant = try await options.withDependencies { dependencies -> TenantRecord? in
                guard let tenant = try await dependencies.catalog.tenant(slug: slug) else { return nil }
                if let newPlan { try await dependencies.tenants.execute(.changePlan(newPlan, at: Date()), on: tenant.id, metadata: TenantCommand.cliMetadata) }
                if status == "suspended" { try await dependencies.tenants.execute(.suspend(reason: nil, at: Date()), on: tenant.id, metadata: TenantCommand.cliMetadata) }
                if status == "active" { try await dependencies.tenants.execute(.reactivate(at: Date()), on: tenant.id, metadata: TenantCommand.cliMetadata) }
                return try await dependencies.catalog.tenant(id: tenant.id)
            }
            guard let tenant else { throw ValidationError("no tenant with slug '\(slug)'") }
            print(TenantCommand.describe(tenant))
        }
    }
}

extension TenantCommand {
    struct Offboard: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Offboard a tenant: suspended at once, purged when the retention passes (OFFBOARDING_RETENTION, default 30d).",
            discussion: "`tenant update SLUG --status active` takes it back before the purge.")
        @OptionGroup var options: CommonOptions
        @Argument var slug: String

        func run() async throws {
            let slug = slug
            let tenant = try await options.withDependencies { dependencies -> TenantRecord? in
                guard let tenant = try await dependencies.catalog.tenant(slug: slug) else { return nil }
                try await dependencies.tenants.execute(.requestOffboarding(at: Date()), on: tenant.id, metadata: TenantCommand.cliMetadata)
                return try await dependencies.catalog.tenant(id: tenant.id)
            }
            guard let tenant else { throw ValidationError("no tenant with slug '\(slug)'") }
            print(TenantCommand.describe(tenant))
            if let due = tenant.removalScheduledAt { print("purged at \(Timestamps.format(due)), or earlier with `petstore tenant purge \(slug) --now --yes`") }
        }
    }

    struct EraseSubject: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "erase-subject",
            abstract: "Erase a person of a tenant (GDPR art. 17): revoke their keys and destroy the key their personal data is sealed with.",
            discussion: """
                The log keeps the sealed bytes, so `audit verify` still passes; every read after shows their email as                 [erased]. Cannot be undone, hence --yes. Refused while they hold the tenant's last active admin keys.
                """)
        @OptionGroup var options: CommonOptions
        @Argument var slug: String
        @Option(help: "The person's email.") var email: String?
        @Option(help: "The person's user id.") var user: String?
        @Flag(help: "Confirm: the erasure cannot be undone.") var yes = false

        func validate() throws {
            guard (email == nil) != (user == nil) else { throw ValidationError("name the person by --email or by --user, one of them") }
            if let user, UUID(uuidString: user) == nil { throw ValidationError("--user must be a user id (a UUID)") }
            guard yes else { throw ValidationError("erasure cannot be undone: pass --yes to go ahead") }
        }

        func run() async throws {
            let (slug, email, user) = (slug, email?.lowercased(), user.flatMap(UUID.init(uuidString:)))
            let erased = try await options.withDependencies { dependencies -> UUID? in
                guard let tenant = try await dependencies.catalog.tenant(slug: slug) else { throw ValidationError("no tenant with slug '\(slug)'") }
                let state = try await dependencies.tenants.state(of: tenant.id)
                guard let id = user ?? email.flatMap({ state?.user(withEmail: $0)?.id }), state?.users[id] != nil else { return nil }
                do {
                    try await dependencies.tenants.execute(.eraseUser(id: id, at: Date()), on: tenant.id, metadata: TenantCommand.cliMetadata)
                } catch let error as TenancyError where error.code == .lastAdminKey {
                    throw ValidationError("they hold the tenant's last active admin keys: issue an admin key to someone else first")
                }
                return id
            }
            guard let erased else { throw ValidationError("no such person in tenant '\(slug)'") }
            print("erased user \(erased.uuidString.lowercased()) of \(slug): keys revoked, personal data unreadable from now on")
        }
    }

    struct Move: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Move a tenant between the shared tables, a schema of its own and a database of its own while it serves.",
            discussion: """
                The log is copied in seq order while the tenant writes; then its writes wait (they are not refused) while \
                the tail is copied, the copy is checked against the log's head seq and hash, the read models are copied \
                and the catalog is switched. Reads go on throughout. The source's copy is removed a few seconds later, \
                once every server has heard of the switch. Seqs, times and hashes are unchanged: `audit verify` passes. \
                A move stopped at any point leaves the tenant serving with nothing lost; running it again resumes it, \
                --abort gives it up (before the switch). A database of its own is made on --server (main by default) \
                from the shared tables or a schema; one leaves its database for the shared tables.
                """)
        @OptionGroup var options: CommonOptions
        @Argument var slug: String
        @Option(help: "shared, schema or database.") var to: String?
        @Option(help: "For --to database: the registered server to make the tenant's database on (default main).") var server: String?
        @Flag(help: "Give up the tenant's move under way (before its switch): the target's copy is dropped.") var abort = false
        @Option(help: "Seconds the source's read models are kept after the switch, for servers that have not heard of it yet.")
        var grace: Double = 5

        func run() async throws {
            let slug = slug
            if abort {
                let aborted = try await options.withDependencies { dependencies -> Bool in
                    guard let move = dependencies.move() else { throw ValidationError("moving a tenant needs the database owner's login") }
                    return try await Self.refusingAsValidation { try await move.abort(slug: slug) }
                }
                print(aborted ? "the move of \(slug) was given up; it stays where it was" : "\(slug) has no move to give up (none, or switched already: run it again to finish)")
                return
            }
            guard let raw = to, let target = Placement(rawValue: raw) else { throw ValidationError("--to must be shared, schema or database") }
            let server = server
            guard grace >= 0 && grace <= 3600 else { throw ValidationError("--grace must be from 0 to 3600 seconds") }
            let grace = grace
            // For tests: a real crash (SIGKILL) at the named phase, to show a rerun resumes.
            let killAt = ProcessInfo.processInfo.environment["PETSTORE_MOVE_KILL_AT"].flatMap(TenantMove.Phase.init(rawValue:))
            let report = try await options.withDependencies { dependencies -> TenantMove.Report? in
                guard let move = dependencies.move(grace: .milliseconds(Int(grace * 1000)), progress: { print($0) }, beforePhase: { phase in
                    if phase == killAt { kill(getpid(), SIGKILL) }
                }) else { throw ValidationError("moving a tenant needs the database owner's login") }
                return try await Self.refusingAsValidation { try await move.move(slug: slug, to: target, server: server) }
            }
            guard let report else { return print("\(slug) is in \(target.rawValue) already") }
            print("moved \(report.slug) from \(report.from.rawValue) to \(report.to.rawValue)")
            print("head\tseq \(report.lastSeq)\t\(report.headHash)")
            print("events copied\t\(report.copiedOnline) while serving, \(report.copiedInPause) in the pause")
            print("read model rows\t\(report.readModelRows)")
            print("writes paused\t\(TenantMove.format(report.pause))")
        }

        static func refusingAsValidation<Result>(_ body: () async throws -> Result) async throws -> Result {
            do {
                return try await body()
            } catch let error as TenancyError where error.code == .notFound || error.code == .conflict || error.code == .invalid {
                throw ValidationError(error.message)
            }
        }
    }

    struct Purge: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Remove every trace of an offboarded tenant, in every placement, and print the signed purge receipt.",
            discussion: """
                Only an offboarding tenant is purged, and before its scheduled removal only with --now. With --export, the \
                tenant's whole log and a checkpoint of its head are written to FILE first (as `audit export` does), and \
                nothing is purged unless that succeeds; the receipt names the log's last seq and head hash, which the \
                export ends with. The slug stays reserved until `tenant release-slug`. Running it again after a failure \
                finishes the purge.
                """)
        @OptionGroup var options: CommonOptions
        @Argument var slug: String
        @Flag(help: "Purge now, before the tenant's scheduled removal.") var now = false
        @Flag(help: "Confirm: a purge cannot be undone.") var yes = false
        @Option(help: "Write a signed export of the tenant's log to this file before purging.") var export: String?
        @Option(name: .customLong("signing-key-file"), help: "The Ed25519 key that signs the receipt. (env: SIGNING_KEY_FILE, default: <data-dir>/signing-key)")
        var signingKeyFile: String?

        func run() async throws {
            guard yes else { throw ValidationError("a purge removes every trace of '\(slug)' and cannot be undone: pass --yes to confirm") }
            let (slug, early, signer) = (slug, now, try options.signer(file: signingKeyFile))
            let destination = export.map { URL(fileURLWithPath: $0) }
            let outcome = try await options.withDependencies { dependencies -> TenantPurge.Outcome in
                guard let purge = dependencies.purge(signer: signer) else { throw ValidationError("purging needs the database owner's login") }
                if let destination, try await dependencies.catalog.tenant(slug: slug)?.status == .offboarding {
                    let progress = ProgressBar(label: "exporting \(slug)")
                    let summary = try await AuditCommand.Export.write(slug: slug, dependencies: dependencies, signer: signer, to: destination,
                                                                      progress: progress)
                    progress.finish()
                    print(summary)
                }
                do {
                    return try await purge.purge(slug: slug, early: early)
                } catch let error as TenancyError where error.code == .notFound || error.code == .conflict {
                    throw ValidationError(error.message)
                }
            }
            switch outcome {
            case .purged(let receipt):
                print("purged \(receipt.slug)")
                TenantCommand.show(receipt)
            case .alreadyPurged(let receipt):
                print("\(receipt.slug) was purged before")
                TenantCommand.show(receipt)
            }
        }
    }

    struct Receipt: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print a purged tenant's receipt and check its signature.")
        @OptionGroup var options: CommonOptions
        @Argument var slug: String
        @Option(name: .customLong("signing-key-file"), help: "The key whose public half checks the signature. (env: SIGNING_KEY_FILE, default: <data-dir>/signing-key)")
        var signingKeyFile: String?

        func run() async throws {
            let (slug, signer) = (slug, try options.signer(file: signingKeyFile))
            let receipt = try await options.withDependencies { dependencies in try await dependencies.purge(signer: signer)?.receipt(slug: slug) }
            guard let receipt else { throw ValidationError("no purge receipt for '\(slug)'") }
            TenantCommand.show(receipt)
            guard receipt.isSigned(by: signer.publicKey) else { throw ValidationError("the receipt's signature does not verify with key \(signer.keyID)") }
            print("signature: valid (key \(receipt.keyID))")
        }
    }

    struct ReleaseSlug: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "release-slug",
            abstract: "Let a new tenant take the slug of a purged one (its receipt is kept).")
        @OptionGroup var options: CommonOptions
        @Argument var slug: String

        func run() async throws {
            let slug = slug
            let released = try await options.withDependencies { dependencies in try await dependencies.purge()?.releaseSlug(slug) ?? false }
            guard released else { throw ValidationError("no purged tenant holds the slug '\(slug)'") }
            print("released \(slug)")
        }
    }

    static func show(_ receipt: TenantPurge.Receipt) {
        print("tenant\t\(receipt.tenant)\t\(receipt.slug)\t\(receipt.placement)\t\(receipt.server)")
        print("log\tlast seq \(receipt.lastSeq)\thead \(receipt.headHash?.hexString ?? "-")")
        print("purged at\t\(receipt.purgedAt)")
        for table in receipt.removed.keys.sorted() { print("removed\t\(receipt.removed[table]!)\t\(table)") }
        for item in receipt.dropped { print("dropped\t\(item)") }
        print("rows removed\t\(receipt.rows)")
        print("signed by\t\(receipt.keyID)\t\(receipt.signature.hexString)")
    }
}

struct KeyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "key",
        abstract: "Issue and revoke API keys, including platform admin keys.",
        subcommands: [Create.self, Revoke.self]
    )

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Issue a key and print it (shown once): --platform for a platform admin, or --tenant with --email and --role."
        )
        @OptionGroup var options: CommonOptions
        @Flag(help: "Issue a platform admin key.") var platform = false
        @Option(help: "A name for a platform key.") var name = "platform admin"
        @Option var tenant: String?
        @Option var email: String?
        @Option(help: "admin, member or auditor.") var role: String?

        func validate() throws {
            if platform {
                guard tenant == nil else { throw ValidationError("--platform and --tenant exclude each other") }
            } else {
                guard tenant != nil, email != nil, let role, Role(rawValue: role) != nil else {
                    throw ValidationError("a tenant key needs --tenant, --email and --role (admin, member or auditor)")
                }
            }
        }

        func run() async throws {
            let (platform, name, tenant, email, role) = (platform, name, tenant, email, role.flatMap(Role.init(rawValue:)))
            let key = try await options.withDependencies { dependencies -> APIKey in
                if platform { return try await dependencies.catalog.createPlatformKey(name: name) }
                guard let tenant, let email, let role, let record = try await dependencies.catalog.tenant(slug: tenant) else {
                    throw ValidationError("no tenant with slug '\(tenant ?? "")'")
                }
                let state = try await dependencies.tenants.state(of: record.id)
                if let user = state?.user(withEmail: email.lowercased()) {
                    return try await dependencies.tenants.issueKey(tenant: record.id, userID: user.id, role: role, metadata: TenantCommand.cliMetadata).key
                }
                return try await dependencies.tenants.addUserWithKey(tenant: record.id, email: email, role: role, metadata: TenantCommand.cliMetadata).key
            }
            print(key.value)
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Revoke a key by its prefix (psk_… or ppk_…).",
            discussion: "A tenant's last active admin key is kept unless --force: issue the tenant another admin key first."
        )
        @OptionGroup var options: CommonOptions
        @Argument var prefix: String
        @Flag(help: "Revoke a tenant's last active admin key too, leaving nobody able to manage its keys until an operator issues one.")
        var force = false

        func run() async throws {
            let (prefix, force) = (prefix, force)
            // nil: no such key; false: it was already revoked (revoking is idempotent).
            let revoked = try await options.withDependencies { dependencies -> Bool? in
                if prefix.hasPrefix("ppk_") { return try await dependencies.catalog.revokePlatformKey(prefix: prefix) ? true : nil }
                guard let (tenant, keyID) = try await dependencies.catalog.keyOwner(prefix: prefix) else { return nil }
                if try await dependencies.tenants.state(of: tenant)?.apiKeys[keyID]?.revoked == true { return false }
                do {
                    try await dependencies.tenants.execute(.revokeApiKey(id: keyID, at: Date(), force: force), on: tenant, metadata: TenantCommand.cliMetadata)
                } catch let error as TenancyError where error.code == .lastAdminKey {
                    throw ValidationError("\(prefix) is the tenant's last active admin key: issue another with `petstore key create --tenant SLUG --email E --role admin` first, or pass --force")
                }
                return true
            }
            guard let revoked else { throw ValidationError("no active key with prefix '\(prefix)'") }
            print(revoked ? "revoked \(prefix)" : "\(prefix) was already revoked")
        }
    }
}
