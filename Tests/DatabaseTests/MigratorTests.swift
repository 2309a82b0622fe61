import Logging
import PetstoreTesting
import PostgresNIO
import Testing
@testable import Database

@Suite struct MigratorTests {
    let logger = TestCluster.logger

    static let first = Migration(version: 1, name: "0001_a.sql", sql: "CREATE TABLE a (id int PRIMARY KEY); INSERT INTO a VALUES (1);")
    static let second = Migration(version: 2, name: "0002_b.sql", sql: "CREATE TABLE b (a_id int REFERENCES a (id));")

    func tables(_ url: DatabaseURL) async throws -> [String] {
        try await url.withConnection(logger: logger) { connection in
            var names: [String] = []
            let rows = try await connection.query(
                "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1", logger: logger)
            for try await name in rows.decode(String.self) { names.append(name) }
            return names
        }
    }

    func versions(_ url: DatabaseURL) async throws -> [Int] {
        try await url.withConnection(logger: logger) { connection in
            var versions: [Int] = []
            for try await version in try await connection.query("SELECT version FROM schema_migrations ORDER BY 1", logger: logger).decode(Int.self) {
                versions.append(version)
            }
            return versions
        }
    }

    @Test func `migrations are applied in version order whatever order they are given in`() async throws {
        let database = try await TestCluster.shared.emptyDatabase()
        let applied = try await Migrator(migrations: [Self.second, Self.first].sorted { $0.version < $1.version })
            .migrate(database.ownerURL, logger: logger)
        #expect(applied.map(\.version) == [1, 2])
        #expect(try await tables(database.ownerURL) == ["a", "b", "schema_migrations"])

        let fromFiles = try Migration.from(files: [(name: "0002_b.sql", sql: "x"), (name: "0001_a.sql", sql: "y")])
        #expect(fromFiles.map(\.version) == [1, 2])
    }

    @Test func `a second run applies nothing`() async throws {
        let database = try await TestCluster.shared.emptyDatabase()
        let migrator = Migrator(migrations: [Self.first, Self.second])
        #expect(try await migrator.migrate(database.ownerURL, logger: logger).count == 2)
        #expect(try await migrator.migrate(database.ownerURL, logger: logger).isEmpty)
        #expect(try await versions(database.ownerURL) == [1, 2])
    }

    @Test func `an applied migration whose text changed is refused by name`() async throws {
        let database = try await TestCluster.shared.emptyDatabase()
        try await Migrator(migrations: [Self.first]).migrate(database.ownerURL, logger: logger)
        let edited = Migration(version: 1, name: "0001_a.sql", sql: Self.first.sql + " -- edited")
        await #expect {
            try await Migrator(migrations: [edited, Self.second]).migrate(database.ownerURL, logger: logger)
        } throws: { error in
            (error as? DatabaseError)?.code == .migrationChanged && (error as? DatabaseError)?.message.contains("0001_a.sql") == true
        }
        #expect(try await versions(database.ownerURL) == [1], "nothing after the refusal is applied")
    }

    @Test func `a database migrated by a newer build is refused`() async throws {
        let database = try await TestCluster.shared.emptyDatabase()
        try await Migrator(migrations: [Self.first, Self.second]).migrate(database.ownerURL, logger: logger)
        await #expect {
            try await Migrator(migrations: [Self.first]).migrate(database.ownerURL, logger: logger)
        } throws: { error in
            (error as? DatabaseError)?.code == .migrationMissing
        }
    }

    @Test func `a failing migration leaves nothing of itself behind`() async throws {
        let database = try await TestCluster.shared.emptyDatabase()
        let broken = Migration(version: 2, name: "0002_broken.sql", sql: "CREATE TABLE c (x int); SELECT no_such_function();")
        await #expect {
            try await Migrator(migrations: [Self.first, broken]).migrate(database.ownerURL, logger: logger)
        } throws: { error in
            let error = error as? DatabaseError
            return error?.code == .migrationFailed && error?.message.contains("0002_broken.sql") == true
        }
        #expect(try await tables(database.ownerURL) == ["a", "schema_migrations"])
        #expect(try await versions(database.ownerURL) == [1])
    }

    @Test func `concurrent migrators apply each migration exactly once`() async throws {
        let database = try await TestCluster.shared.emptyDatabase()
        // Slow enough that the migrators overlap: without the lock, the second CREATE TABLE would fail.
        let slow = Migration(version: 1, name: "0001_slow.sql", sql: "SELECT pg_sleep(0.3); CREATE TABLE a (id int PRIMARY KEY);")
        let migrator = Migrator(migrations: [slow, Self.second])
        let applied = try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<4 {
                group.addTask { try await migrator.migrate(database.ownerURL, logger: logger).count }
            }
            return try await group.reduce(into: [Int]()) { $0.append($1) }
        }
        #expect(applied.sorted() == [0, 0, 0, 2])
        #expect(try await versions(database.ownerURL) == [1, 2])
    }

    @Test func `status reports pending migrations without applying them`() async throws {
        let database = try await TestCluster.shared.emptyDatabase()
        let migrator = Migrator(migrations: [Self.first, Self.second])
        let before = try await database.ownerURL.withConnection(logger: logger) { try await migrator.status(on: $0, logger: logger) }
        #expect(before.pending.map(\.version) == [1, 2])
        try await migrator.migrate(database.ownerURL, logger: logger)
        let after = try await database.ownerURL.withConnection(logger: logger) { try await migrator.status(on: $0, logger: logger) }
        #expect(after.isCurrent)
        #expect(after.applied == [1, 2])
    }
}
