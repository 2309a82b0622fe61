import ArgumentParser

@main
struct Petstore: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "petstore",
        abstract: "An event-sourced, multi-tenant pet store backend on PostgreSQL.",
        subcommands: [Serve.self, Migrate.self]
    )
}
