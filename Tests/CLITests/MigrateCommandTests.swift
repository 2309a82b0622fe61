import Database
import Foundation
import PetstoreTesting
import PostgresNIO
import Projectors
import Testing

/// `petstore migrate` over the control plane and every tenant, as a real process.
@Suite struct MigrateCommandTests {
    func run(_ arguments: [String], database: TestDatabase) async throws -> (status: Int32, output: String) {
        var environment = ProcessInfo.processInfo.environment
        environment["DATABASE_URL"] = database.ownerURL.connectionString
        environment["APP_DATABASE_URL"] = nil
        let child = try ChildProcess.spawn([ServeCommandTests.binary] + arguments + ["--log-level", "critical"], environment: environment)
        let status = await child.wait()
        return (status, child.output.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    /// Takes a schema tenant's copy of the pets projection away (and its ledger row), leaving an
    /// empty schema in its place when `leaveHusk`, which migrate cannot fill and must report.
    func breakCopy(of slug: String, leaveHusk: Bool, database: TestDatabase) async throws {
        let version = try #require(ProjectionDefinition.named("pets")).version
        try await database.superuserURL.withConnection(logger: TestCluster.logger) { connection in
            let id = try await connection.query("SELECT id FROM tenants WHERE slug = \(slug)", logger: TestCluster.logger)
                .decode(UUID.self).first(where: { _ in true })
            let hex = try #require(id).uuidString.lowercased().replacingOccurrences(of: "-", with: "")
            try await connection.run(trusted: "DROP SCHEMA t_\(hex)_\(version) CASCADE", logger: TestCluster.logger)
            if leaveHusk { try await connection.run(trusted: "CREATE SCHEMA t_\(hex)_\(version)", logger: TestCluster.logger) }
            try await connection.query("DELETE FROM tenant_migrations WHERE tenant_id = \(id) AND item LIKE 'projection:pets:%'",
                                       logger: TestCluster.logger).consume()
        }
    }

    @Test func `migrate lists, runs one tenant or all, reports a failing tenant and goes on, and finds nothing left on a rerun`() async throws {
        let database = try await TestCluster.shared.database()
        for (slug, placement) in [("m-one", "schema"), ("m-two", "schema"), ("m-shared", "shared")] {
            let created = try await run(["tenant", "create", "--slug", slug, "--name", slug, "--plan", "premium", "--placement", placement], database: database)
            #expect(created.status == 0, "\(created.output)")
        }
        let clean = try await run(["migrate"], database: database)
        #expect(clean.status == 0, "\(clean.output)")
        #expect(clean.output.contains("control plane: schema is up to date"))
        #expect(clean.output.contains("tenants: 0 migrated, 0 failed, 3 already up to date (1 in the shared tables)"), "\(clean.output)")

        try await breakCopy(of: "m-one", leaveHusk: false, database: database)
        try await breakCopy(of: "m-two", leaveHusk: true, database: database)
        let dry = try await run(["migrate", "--dry-run"], database: database)
        #expect(dry.status == 0, "\(dry.output)")
        #expect(dry.output.contains("tenant m-one (schema): would copy and fill pets"), "\(dry.output)")
        #expect(dry.output.contains("tenant m-two (schema): would copy and fill pets"))
        #expect(dry.output.contains("tenants: 2 of 3 would be migrated"))
        #expect(try await run(["migrate", "--dry-run"], database: database).output == dry.output, "a dry run changes nothing")

        let one = try await run(["migrate", "--tenant", "m-one"], database: database)
        #expect(one.status == 0, "\(one.output)")
        #expect(one.output.contains("[1/1] tenant m-one: migrated (pets"), "\(one.output)")
        #expect(!one.output.contains("m-two"))
        #expect(try await run(["migrate", "--tenant", "nobody"], database: database).status != 0)

        let failing = try await run(["migrate", "--jobs", "2"], database: database)
        #expect(failing.status == 1, "\(failing.output)")
        #expect(failing.output.contains("tenant m-two: FAILED"), "\(failing.output)")
        #expect(failing.output.contains("0 migrated, 1 failed, 2 already up to date"), "\(failing.output)")

        // Once the husk is gone, the next run makes the copy and fills it.
        try await breakCopy(of: "m-two", leaveHusk: false, database: database)
        let fixed = try await run(["migrate"], database: database)
        #expect(fixed.status == 0 && fixed.output.contains("1 migrated, 0 failed, 2 already up to date"), "\(fixed.output)")
        let rerun = try await run(["migrate"], database: database)
        #expect(rerun.status == 0 && rerun.output.contains("0 migrated, 0 failed, 3 already up to date"), "\(rerun.output)")
        #expect(try await run(["migrate", "--jobs", "0"], database: database).status != 0)
    }
}
