import Database
import Foundation
import PetstoreTesting
import Testing

/// `petstore tenant move`, killed (SIGKILL) at each phase: the tenant serves from wherever the
/// catalog says with its log whole, and running the move again finishes it.
@Suite(.serialized) struct MoveCommandTests {
    let directory = FileManager.default.temporaryDirectory.appending(path: "petstore-move-\(UUID().uuidString.prefix(8))")

    func run(_ arguments: [String], on database: TestDatabase, killAt phase: String? = nil) async throws -> (status: Int32, output: String) {
        var environment = ProcessInfo.processInfo.environment
        environment["DATABASE_URL"] = database.ownerURL.connectionString
        environment["APP_DATABASE_URL"] = database.appURL.connectionString
        environment["PETSTORE_MOVE_KILL_AT"] = phase
        let child = try ChildProcess.spawn([ServeCommandTests.binary] + arguments + ["--data-dir", directory.path, "--log-level", "error"],
                                           environment: environment)
        let status = await child.wait()
        return (status, child.output.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    @Test func `a move killed at each phase leaves the log whole, and running it again finishes it`() async throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let database = try await TestCluster.shared.database()
        #expect(try await run(["tenant", "create", "--slug", "wanderer", "--name", "Wanderer", "--plan", "basic", "--placement", "shared"], on: database).status == 0)

        var placement = "shared"
        for phase in ["prepare", "copy", "switch", "cleanup"] {
            for target in ["schema", "shared"] {
                let killed = try await run(["tenant", "move", "wanderer", "--to", target, "--grace", "0"], on: database, killAt: phase)
                #expect(killed.status == 128 + SIGKILL, "killed at \(phase): \(killed.output)")
                // Killed before the switch committed, the tenant is where it was; after, where it went.
                let shown = try await run(["tenant", "show", "wanderer"], on: database)
                let now = phase == "cleanup" ? target : placement
                #expect(shown.output.contains("\t\(now)\t"), "killed at \(phase) on the way to \(target): \(shown.output)")
                let verified = try await run(["audit", "verify", "--tenant", "wanderer"], on: database)
                #expect(verified.status == 0, "\(verified.output)")

                let resumed = try await run(["tenant", "move", "wanderer", "--to", target, "--grace", "0"], on: database)
                #expect(resumed.status == 0, "\(resumed.output)")
                #expect(resumed.output.contains("moved wanderer") || resumed.output.contains("in \(target) already"), "\(resumed.output)")
                placement = target
                #expect(try await run(["tenant", "show", "wanderer"], on: database).output.contains("\t\(target)\t"))
                #expect(try await run(["audit", "verify", "--tenant", "wanderer"], on: database).status == 0)
            }
        }
        let moved = try await run(["tenant", "move", "wanderer", "--to", "schema"], on: database)
        #expect(moved.output.contains("writes paused") && moved.output.contains("head\tseq "), "\(moved.output)")
        #expect(try await run(["tenant", "move", "wanderer", "--to", "database"], on: database).status != 0)
        #expect(try await run(["tenant", "move", "wanderer", "--abort"], on: database).output.contains("no move to give up"))
    }

    @Test func `a move into or out of a database of its own on another server, killed at each phase, finishes when run again`() async throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let database = try await TestCluster.shared.database()
        let second = try await TestCluster.second.serverURL().connectionString
        #expect(try await run(["server", "add", "second", second], on: database).status == 0)
        let created = try await run(["tenant", "create", "--slug", "voyager", "--name", "Voyager", "--plan", "enterprise", "--placement", "shared"],
                                    on: database)
        #expect(created.status == 0, "\(created.output)")

        var placement = "shared"
        for phase in ["prepare", "copy", "switch", "cleanup"] {
            for target in ["database", "shared"] {
                let arguments = ["tenant", "move", "voyager", "--to", target, "--grace", "0"] + (target == "database" ? ["--server", "second"] : [])
                let killed = try await run(arguments, on: database, killAt: phase)
                #expect(killed.status == 128 + SIGKILL, "killed at \(phase): \(killed.output)")
                let shown = try await run(["tenant", "show", "voyager"], on: database)
                let now = phase == "cleanup" ? target : placement
                #expect(shown.output.contains("\t\(now)\t"), "killed at \(phase) on the way to \(target): \(shown.output)")
                let verified = try await run(["audit", "verify", "--tenant", "voyager"], on: database)
                #expect(verified.status == 0, "\(verified.output)")

                let resumed = try await run(arguments, on: database)
                #expect(resumed.status == 0 && resumed.output.contains("moved voyager"), "\(resumed.output)")
                placement = target
                #expect(try await run(["tenant", "show", "voyager"], on: database).output.contains("\t\(target)\t\(target == "database" ? "second" : "main")\t"))
                let after = try await run(["audit", "verify", "--tenant", "voyager"], on: database)
                #expect(after.status == 0 && after.output.contains("ok"), "\(after.output)")
            }
        }
    }
}
