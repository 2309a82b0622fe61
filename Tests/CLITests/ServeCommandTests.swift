import Database
import Foundation
import PetstoreTesting
import Testing

/// Runs the real `petstore` binary, as an operator would.
@Suite(.serialized) struct ServeCommandTests {
    static var binary: String {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appending(path: "petstore").path
    }

    func environment(_ extra: [String: String]) -> [String: String] {
        var environment = ProcessInfo.processInfo.environment
        environment.removeValue(forKey: "DATABASE_URL")
        environment.merge(extra) { _, new in new }
        return environment
    }

    func run(_ arguments: [String], environment extra: [String: String] = [:]) async throws -> (status: Int32, output: String) {
        let child = try ChildProcess.spawn([Self.binary] + arguments, environment: environment(extra))
        let status = await child.wait()
        return (status, child.output)
    }

    func freePort() throws -> Int { try LocalCluster.freePort() }

    @Test func `a malformed DATABASE_URL is one error line and a non-zero exit`() async throws {
        let result = try await run(["migrate"], environment: ["DATABASE_URL": "postgres://nobody@/"])
        #expect(result.status != 0)
        let lines = result.output.split(separator: "\n")
        #expect(lines.count == 1)
        #expect(result.output.contains("DATABASE_URL is not valid"))
    }

    @Test func `an unreachable server is one error line and a non-zero exit, not a hang`() async throws {
        let start = ContinuousClock.now
        let result = try await run(["migrate", "--log-level", "error"], environment: ["DATABASE_URL": "postgres://u:p@127.0.0.1:1/db"])
        #expect(result.status != 0)
        #expect(result.output.contains("cannot connect to postgres://u:****@127.0.0.1:1/db"))
        #expect(!result.output.contains(":p@"), "the password is never printed")
        #expect(ContinuousClock.now - start < .seconds(30))
    }

    @Test func `a bad port, log format or number of commit lanes is refused before anything starts`() async throws {
        let port = try await run(["serve", "--port", "70000"])
        #expect(port.status != 0)
        #expect(port.output.contains("port must be a number from 1 to 65535"))
        let format = try await run(["serve", "--log-format", "xml"])
        #expect(format.status != 0)
        #expect(format.output.contains("log format must be text or json"))
        let lanes = try await run(["serve"], environment: ["COMMIT_LANES": "-1"])
        #expect(lanes.status != 0)
        #expect(lanes.output.contains("commit lanes must be a number from 0 to 256"), "\(lanes.output)")
    }

    @Test func `serve starts a private cluster, answers, and on SIGTERM stops it and exits cleanly`() async throws {
        let directory = FileManager.default.temporaryDirectory.appending(path: "petstore-serve-\(UUID().uuidString.prefix(8))")
        defer { try? FileManager.default.removeItem(at: directory) }
        let port = try freePort()
        let child = try ChildProcess.spawn(
            [Self.binary, "serve", "--data-dir", directory.path, "--port", "\(port)", "--host", "127.0.0.1"],
            environment: environment([:])
        )
        let status = await HTTPProbe.waitUntilReady(port: port) { child.exitStatus() != nil }
        #expect(status == 200, "ready: \(child.output)")
        let pidFile = directory.appending(path: "postgres/data/postmaster.pid")
        #expect(FileManager.default.fileExists(atPath: pidFile.path))

        // A second server on the same folder and port: the cluster is reused, the port is taken.
        let second = try await run(["serve", "--data-dir", directory.path, "--port", "\(port)", "--host", "127.0.0.1", "--log-level", "error"])
        #expect(second.status != 0)
        #expect(second.output.contains("already in use"), "\(second.output)")
        #expect(FileManager.default.fileExists(atPath: pidFile.path), "the loser must not stop a cluster it did not start")

        child.signal(SIGTERM)
        let exit = await child.wait()
        #expect(exit == 0, "\(child.output)")
        #expect(!FileManager.default.fileExists(atPath: pidFile.path), "the private cluster is stopped")
        #expect(child.output.contains("local PostgreSQL stopped"))
    }

    @Test(.enabled(if: geteuid() == 0, "only root hands the server to another user"))
    func `as root in a checkout under a closed home folder, serve with no flags becomes ready`() async throws {
        // The newcomer's first command: root, a checkout in a 0700 home, no --data-dir.
        let home = FileManager.default.temporaryDirectory.appending(path: "petstore-home-\(UUID().uuidString.prefix(8))")
        let checkout = home.appending(path: "petstore")
        try FileManager.default.createDirectory(at: checkout, withIntermediateDirectories: true)
        chmod(home.path, 0o700)
        let port = try freePort()
        let child = try ChildProcess.spawn(
            [Self.binary, "serve", "--port", "\(port)", "--host", "127.0.0.1"],
            environment: environment([:]).filter { $0.key != "PETSTORE_DATA_DIR" }, workingDirectory: checkout.path
        )
        let location = checkout.appending(path: ".petstore/cluster-location")
        defer {
            if let relocated = try? String(contentsOf: location, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines) {
                try? FileManager.default.removeItem(atPath: relocated)
            }
            try? FileManager.default.removeItem(at: home)
        }
        let status = await HTTPProbe.waitUntilReady(port: port) { child.exitStatus() != nil }
        #expect(status == 200, "ready: \(child.output)")
        let relocated = try String(contentsOf: location, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(relocated.hasPrefix(LocalCluster.relocatedRoot.path + "/"))
        #expect(child.output.contains("the local PostgreSQL cluster lives in \(relocated)"), "start-up says where: \(child.output)")

        child.signal(SIGTERM)
        #expect(await child.wait() == 0, "\(child.output)")
        #expect(!FileManager.default.fileExists(atPath: relocated + "/data/postmaster.pid"), "the private cluster is stopped")
    }
}
