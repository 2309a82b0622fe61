import Database
import Foundation
import PetstoreTesting
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `serve` with only an owner's DATABASE_URL serves as the application role, and refuses to
/// serve at all when that role could read past row-level security. On a cluster of the test's
/// own: roles belong to the whole server, and this one changes the application role.
@Suite(.serialized) struct ServingRoleTests {
    @Test func `serve refuses to start, in one line, when its pools' role can bypass row-level security`() async throws {
        let directory = FileManager.default.temporaryDirectory.appending(path: "petstore-role-\(UUID().uuidString.prefix(8))")
        let cluster = try await LocalCluster(directory: directory, settings: TestCluster.fastSettings, logger: TestCluster.logger).start()
        defer { cluster.destroy() }
        var environment = ProcessInfo.processInfo.environment
        environment["DATABASE_URL"] = cluster.ownerURL.connectionString
        environment.removeValue(forKey: "APP_DATABASE_URL")
        let migrate = try ChildProcess.spawn([ServeCommandTests.binary, "migrate", "--log-level", "error"], environment: environment)
        #expect(await Self.exit(migrate) == 0, "\(migrate.output)")

        try await cluster.superuserURL.with(database: LocalCluster.databaseName).withConnection(logger: TestCluster.logger) { connection in
            try await connection.query("ALTER ROLE \(unescaped: LocalCluster.appRole) BYPASSRLS", logger: TestCluster.logger).consume()
        }
        let port = try LocalCluster.freePort()
        let server = try ChildProcess.spawn(
            [ServeCommandTests.binary, "serve", "--port", "\(port)", "--host", "127.0.0.1", "--data-dir", directory.appending(path: "server").path,
             "--rate-limits", "off", "--log-level", "critical"],
            environment: environment)
        defer {
            server.signal(SIGKILL)
            _ = server.exitStatus()
        }
        let status = await Self.exit(server)
        #expect(status != nil && status != 0, "serve must exit, and fail: \(server.output)")
        let lines = server.output.split(separator: "\n").filter { !$0.isEmpty }
        #expect(lines.count == 1 && lines.first?.contains("BYPASSRLS") == true, "\(server.output)")
        let socket = HTTPProbe.connectSocket(port: port, receiveTimeout: .seconds(1))
        #expect(socket == nil, "nothing listens")
        if let socket { close(socket) }
    }

    /// The exit status within 60 s, polled so that no thread of the pool blocks on the child.
    static func exit(_ child: ChildProcess) async -> Int32? {
        for _ in 0..<600 {
            if let status = child.exitStatus() { return status }
            try? await Task.sleep(for: .milliseconds(100))
        }
        return nil
    }
}
