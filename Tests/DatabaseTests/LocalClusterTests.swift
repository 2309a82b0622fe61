import Foundation
import PetstoreTesting
import PostgresNIO
import Testing
@testable import Database

@Suite(.serialized) struct LocalClusterTests {
    let logger = TestCluster.logger

    func temporaryDirectory() -> URL {
        FileManager.default.temporaryDirectory.appending(path: "petstore-cluster-\(UUID().uuidString.prefix(8))")
    }

    func answers(_ url: DatabaseURL) async throws -> Int {
        try await url.withConnection(logger: logger) { connection in
            try await connection.query("SELECT 41 + 1", logger: logger).collect().first?.decode(Int.self) ?? 0
        }
    }

    @Test func `a cluster is created, reused after a stop, and found running by a second start`() async throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let cluster = LocalCluster(directory: directory, settings: TestCluster.fastSettings, logger: logger)

        let first = try await cluster.start()
        #expect(first.startedHere)
        #expect(try await answers(first.appURL) == 42)
        try await first.ownerURL.withConnection(logger: logger) { connection in
            try await connection.execute("CREATE TABLE kept (x int)", logger: logger)
        }

        let second = try await cluster.start()
        #expect(!second.startedHere, "a running cluster is reused, not started twice")
        #expect(second.port == first.port)

        first.stop()
        #expect(!FileManager.default.fileExists(atPath: cluster.dataDirectory.appending(path: "postmaster.pid").path))

        let third = try await cluster.start()
        #expect(third.startedHere)
        let kept = try await third.ownerURL.withConnection(logger: logger) { connection in
            try await connection.query("SELECT count(*) FROM pg_tables WHERE tablename = 'kept'", logger: logger)
                .collect().first?.decode(Int.self)
        }
        #expect(kept == 1, "the data survives a restart: the cluster was reused, not recreated")
        third.stop()
    }

    @Test func `a stale pid file left by a crash does not stop the next start`() async throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let cluster = LocalCluster(directory: directory, settings: TestCluster.fastSettings, logger: logger)
        let running = try await cluster.start()
        // Kill the server the hard way, so that postmaster.pid stays behind.
        let pidFile = cluster.dataDirectory.appending(path: "postmaster.pid")
        let pid = try #require(Int32(try String(contentsOf: pidFile, encoding: .utf8).split(separator: "\n")[0]))
        kill(pid, SIGKILL)
        while LocalCluster.isPostgres(pid: pid) { try await Task.sleep(for: .milliseconds(50)) }
        // Children of the killed postmaster notice within moments; wait for the shared memory to go.
        try await Task.sleep(for: .milliseconds(500))
        #expect(FileManager.default.fileExists(atPath: pidFile.path))

        let restarted = try await cluster.start()
        #expect(restarted.startedHere)
        #expect(try await answers(restarted.appURL) == 42)
        restarted.stop()
        _ = running
    }

    @Test(.enabled(if: geteuid() == 0, "only root hands the server to another user"))
    func `as root, a data folder under a parent closed to others moves the cluster where postgres can reach it`() async throws {
        // A checkout in root's home: the parent is 0700, so the postgres user cannot get through.
        let home = temporaryDirectory()
        try FileManager.default.createDirectory(at: home, withIntermediateDirectories: true)
        chmod(home.path, 0o700)
        defer { try? FileManager.default.removeItem(at: home) }
        let directory = home.appending(path: "checkout/.petstore")
        let cluster = LocalCluster(directory: directory, settings: TestCluster.fastSettings, logger: logger)

        let first = try await cluster.start()
        defer { first.destroy() }
        #expect(try await answers(first.appURL) == 42)
        let relocated = cluster.serverDirectory
        #expect(relocated.path.hasPrefix(LocalCluster.relocatedRoot.path + "/"))
        #expect(cluster.serverDirectory.lastPathComponent.hasPrefix("checkout-"), "named for the checkout: \(cluster.serverDirectory.path)")
        let remembered = try String(contentsOf: directory.appending(path: "cluster-location"), encoding: .utf8)
        #expect(remembered.trimmingCharacters(in: .whitespacesAndNewlines) == cluster.serverDirectory.path)
        #expect(!FileManager.default.fileExists(atPath: directory.appending(path: "postgres").path), "no empty folder is left behind")
        #expect(FileManager.default.fileExists(atPath: directory.appending(path: "credentials.json").path), "credentials stay with the caller")

        try await first.ownerURL.withConnection(logger: logger) { connection in
            try await connection.execute("CREATE TABLE kept (x int)", logger: logger)
        }
        first.stop()
        let second = try await cluster.start()
        #expect(second.startedHere)
        let kept = try await second.ownerURL.withConnection(logger: logger) { connection in
            try await connection.query("SELECT count(*) FROM pg_tables WHERE tablename = 'kept'", logger: logger)
                .collect().first?.decode(Int.self)
        }
        #expect(kept == 1, "the second start finds the remembered cluster")

        second.destroy()
        #expect(!FileManager.default.fileExists(atPath: relocated.path), "destroy removes the relocated folder too")
    }

    @Test func `the application role owns nothing and cannot bypass row-level security`() async throws {
        let database = try await TestCluster.shared.database()
        let attributes = try await database.appURL.withConnection(logger: logger) { connection in
            try await connection.query(
                "SELECT rolsuper, rolbypassrls, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = current_user", logger: logger
            ).collect().first?.decode((Bool, Bool, Bool, Bool).self)
        }
        let (superuser, bypass, createRole, createDatabase) = try #require(attributes)
        #expect(!superuser && !bypass && !createRole && !createDatabase)
    }

    @Test func `missing server binaries give one line saying how to install them`() {
        #expect {
            try PostgresBinaries.locate(environment: ["PATH": "/nonexistent"], debianRoot: URL(fileURLWithPath: "/nonexistent"))
        } throws: { error in
            let error = error as? DatabaseError
            return error?.code == .binariesNotFound && error?.message.contains("apt-get install postgresql") == true
        }
    }

    @Test func `a data folder that cannot be created is one clear error`() async throws {
        let file = temporaryDirectory()
        try Data("not a folder".utf8).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        await #expect {
            try await LocalCluster(directory: file.appending(path: "inner"), logger: logger).start()
        } throws: { error in
            (error as? DatabaseError)?.code == .directoryNotUsable
        }
    }
}
