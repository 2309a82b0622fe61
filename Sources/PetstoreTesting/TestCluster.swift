import Database
import Projectors
import Foundation
import Logging
import PostgresNIO

#if canImport(Glibc)
import Glibc
#endif

/// One throwaway PostgreSQL cluster per test process, and a fresh database per test.
///
/// The first test to ask starts the cluster (under the system temporary folder, fsync off) or, when
/// `TEST_DATABASE_URL` names a superuser of a disposable server, uses that server. It then migrates
/// a template database once; every `database()` is a `CREATE DATABASE … TEMPLATE` copy of it, so
/// tests run in parallel and never see each other's rows.
public actor TestCluster {
    public static let shared = TestCluster(label: "")
    /// Another server on loopback, for tenants placed on a server other than main. Started by
    /// the first test that asks (or `TEST_SECOND_DATABASE_URL`, a superuser of another server).
    public static let second = TestCluster(label: "second")

    let label: String

    init(label: String) {
        self.label = label
    }

    struct Server: Sendable {
        let superuserURL: DatabaseURL
        let ownerURL: DatabaseURL
        let appURL: DatabaseURL
    }

    private var server: Task<Server, any Error>?
    private var databaseCounter = 0

    public static let logger: Logger = {
        var logger = Logger(label: "petstore.tests")
        logger.logLevel = ProcessInfo.processInfo.environment["TEST_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .warning
        return logger
    }()

    /// Settings that make a throwaway cluster fast; durability is not wanted here.
    public static let fastSettings: [String: String] = [
        "fsync": "off",
        "synchronous_commit": "off",
        "full_page_writes": "off",
        "max_connections": "400",
        "shared_buffers": "'256MB'",
    ]

    static let templateName = "petstore_template"

    /// A new database with every migration applied.
    public func database() async throws -> TestDatabase {
        let server = try await prepared()
        databaseCounter += 1
        // Our own name, built from a counter and the process id: safe to write into the DDL.
        let name = "test_\(getpid())_\(databaseCounter)"
        // One clone at a time (the actor would otherwise interleave them at each await), and a
        // retry while the template is briefly busy (SQLSTATE 55006), which CREATE DATABASE
        // reports after waiting five seconds itself.
        let previous = cloning
        let clone = Task { [previous] in
            _ = await previous?.result
            var attempt = 0
            while true {
                attempt += 1
                do {
                    try await server.ownerURL.with(database: "postgres").withConnection(logger: Self.logger) { connection in
                        try await connection.run(trusted: "CREATE DATABASE \(name) TEMPLATE \(Self.templateName)", logger: Self.logger)
                    }
                    return
                } catch {
                    let described = DatabaseURL.describe(error)
                    guard described.contains("55006"), attempt < 6 else {
                        throw DatabaseError(.unreachable, "could not create test database \(name): \(described)")
                    }
                    try await Task.sleep(for: .milliseconds(200 * attempt))
                }
            }
        }
        cloning = clone
        try await clone.value
        return TestDatabase(
            name: name,
            ownerURL: server.ownerURL.with(database: name),
            appURL: server.appURL.with(database: name),
            superuserURL: server.superuserURL.with(database: name)
        )
    }

    private var cloning: Task<Void, any Error>?

    /// A new database with nothing in it (not even the migrations table), for migration tests.
    public func emptyDatabase() async throws -> TestDatabase {
        let server = try await prepared()
        databaseCounter += 1
        let name = "empty_\(getpid())_\(databaseCounter)"
        try await server.ownerURL.with(database: "postgres").withConnection(logger: Self.logger) { connection in
            try await connection.run(trusted: "CREATE DATABASE \(name)", logger: Self.logger)
        }
        return TestDatabase(
            name: name,
            ownerURL: server.ownerURL.with(database: name),
            appURL: server.appURL.with(database: name),
            superuserURL: server.superuserURL.with(database: name)
        )
    }

    /// A login on this cluster's server that may create databases (the schema owner), on its
    /// `postgres` database: what `server add` takes.
    public func serverURL() async throws -> DatabaseURL {
        try await prepared().ownerURL.with(database: "postgres")
    }

    /// A superuser of this cluster's server, on `database`: for tests that look past row-level
    /// security at what a database of its own holds.
    public func superuserURL(database: String) async throws -> DatabaseURL {
        try await prepared().superuserURL.with(database: database)
    }

    private func prepared() async throws -> Server {
        if let server { return try await server.value }
        let label = label
        let task = Task { try await Self.startServer(label: label) }
        server = task
        return try await task.value
    }

    private static func startServer(label: String) async throws -> Server {
        let server: Server
        let variable = label.isEmpty ? "TEST_DATABASE_URL" : "TEST_\(label.uppercased())_DATABASE_URL"
        if let raw = ProcessInfo.processInfo.environment[variable] {
            server = try await adopt(superuser: try DatabaseURL(raw))
        } else {
            let directory = FileManager.default.temporaryDirectory.appending(path: "petstore-tests\(label.isEmpty ? "" : "-" + label)-\(getpid())")
            try? FileManager.default.removeItem(at: directory)
            let cluster = try await LocalCluster(directory: directory, settings: fastSettings, logger: logger).start()
            ThrowawayClusters.register(cluster, directory: directory)
            server = Server(superuserURL: cluster.superuserURL, ownerURL: cluster.ownerURL, appURL: cluster.appURL)
        }
        try await server.ownerURL.with(database: "postgres").withConnection(logger: logger) { connection in
            try await connection.run(trusted: "DROP DATABASE IF EXISTS \(templateName)", logger: logger)
            try await connection.run(trusted: "CREATE DATABASE \(templateName)", logger: logger)
        }
        try await Migrator().migrate(server.ownerURL.with(database: templateName), logger: logger)
        try await ProjectionInstaller().install(server.ownerURL.with(database: templateName), logger: logger)
        // A closed connection's server process can linger a moment, autovacuum may visit, and
        // CREATE DATABASE … TEMPLATE refuses (after waiting five seconds) while anyone is connected
        // to the template: close it to connections, then wait for the last one to leave.
        try await server.ownerURL.with(database: "postgres").withConnection(logger: logger) { connection in
            try await connection.run(trusted: "ALTER DATABASE \(templateName) WITH ALLOW_CONNECTIONS false", logger: logger)
            for _ in 0..<200 {
                let rows = try await connection.query(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = \(templateName)", logger: logger)
                if try await rows.decode(Int.self).first(where: { _ in true }) == 0 { return }
                try await Task.sleep(for: .milliseconds(25))
            }
        }
        return server
    }

    /// Uses an existing server: creates (or resets the passwords of) the owner and app roles.
    private static func adopt(superuser: DatabaseURL) async throws -> Server {
        let ownerPassword = UUID().uuidString.replacingOccurrences(of: "-", with: "")
        let appPassword = UUID().uuidString.replacingOccurrences(of: "-", with: "")
        // The passwords are hex generated just above: safe in DDL, which takes no binds.
        try await superuser.withConnection(logger: logger) { connection in
            try await connection.run(trusted: """
                DO $$ BEGIN
                  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '\(LocalCluster.ownerRole)') THEN
                    CREATE ROLE \(LocalCluster.ownerRole) LOGIN CREATEDB CREATEROLE;
                  END IF;
                  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '\(LocalCluster.appRole)') THEN
                    CREATE ROLE \(LocalCluster.appRole) LOGIN NOSUPERUSER NOBYPASSRLS;
                  END IF;
                  ALTER ROLE \(LocalCluster.ownerRole) PASSWORD '\(ownerPassword)';
                  ALTER ROLE \(LocalCluster.appRole) LOGIN PASSWORD '\(appPassword)';
                END $$
                """, logger: logger)
        }
        return Server(
            superuserURL: superuser,
            ownerURL: superuser.with(username: LocalCluster.ownerRole, password: ownerPassword),
            appURL: superuser.with(username: LocalCluster.appRole, password: appPassword)
        )
    }
}

/// A database of one test.
public struct TestDatabase: Sendable {
    public let name: String
    /// The schema owner: migrations, and tests that tamper with rows as the owner would.
    public let ownerURL: DatabaseURL
    /// The application's role, as the server uses it.
    public let appURL: DatabaseURL
    /// A superuser, for tests that must step around triggers.
    public let superuserURL: DatabaseURL

    /// A pool on the application's role, running for the duration of `body`.
    public func withAppClient<Result: Sendable>(
        maximumConnections: Int = 10,
        _ body: (PostgresClient) async throws -> Result
    ) async throws -> Result {
        let client = PostgresClient(configuration: appURL.clientConfiguration(maximumConnections: maximumConnections),
                                    backgroundLogger: TestCluster.logger)
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            defer { group.cancelAll() }
            return try await body(client)
        }
    }
}

/// Stops the throwaway clusters when the test process exits.
enum ThrowawayClusters {
    // Written once by the actor above before any exit handler can run; read only at exit.
    nonisolated(unsafe) static var registered: [(RunningCluster, URL)] = []

    static func register(_ cluster: RunningCluster, directory: URL) {
        let first = registered.isEmpty
        registered.append((cluster, directory))
        if first {
            atexit {
                for (cluster, _) in ThrowawayClusters.registered {
                    cluster.destroy()
                }
            }
        }
    }
}
