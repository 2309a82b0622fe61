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
        subcommands: [Create.self, List.self, Show.self, Update.self]
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
