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
