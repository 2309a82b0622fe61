import ArgumentParser
import Foundation
import Operations
import Tenancy

struct ServerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "server",
        abstract: "Register, list and remove the PostgreSQL servers tenants may be placed on.",
        discussion: "main is the server of DATABASE_URL (or the embedded cluster). A server's URL is never printed.",
        subcommands: [Add.self, List.self, Remove.self]
    )

    /// A refusal with what each field got wrong, on one line.
    static func explain(_ error: TenancyError) -> CLIError {
        CLIError(([error.message] + error.fieldErrors.map { "\($0.field): \($0.message)" }).joined(separator: "; "))
    }

    static func describe(_ server: ServerRegistry.Server) -> String {
        "\(server.name)\t\(server.display)\t\(server.tenants) tenant(s)"
    }

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Register a server: NAME and a postgres:// URL whose login may create databases there.")
        @OptionGroup var options: CommonOptions
        @Argument var name: String
        @Argument(help: "postgres://user:password@host:port/database; checked by connecting, then kept and never shown.") var url: String

        func run() async throws {
            let (name, url) = (name, url)
            do {
                let server = try await options.withDependencies { try await $0.servers.add(name: name, url: url) }
                print(ServerCommand.describe(server))
            } catch let error as TenancyError {
                throw ServerCommand.explain(error)
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List servers: name, host:port/database, tenants placed there.")
        @OptionGroup var options: CommonOptions

        func run() async throws {
            for server in try await options.withDependencies({ try await $0.servers.list() }) { print(ServerCommand.describe(server)) }
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Forget a server; refused while tenants are placed on it.")
        @OptionGroup var options: CommonOptions
        @Argument var name: String

        func run() async throws {
            let name = name
            do {
                try await options.withDependencies { try await $0.servers.remove(name: name) }
                print("removed server \(name)")
            } catch let error as TenancyError {
                throw ServerCommand.explain(error)
            }
        }
    }
}
