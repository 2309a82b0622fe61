import Database
import Foundation
import Logging
import PetstoreTesting
import PostgresNIO
import Testing
@testable import EventLog

/// The tenant session is the one way into a tenant's rows: SQL checks the tenant it is given
/// against the one the session entered, and the pools are the application role whatever URL
/// they were given.
@Suite struct TenantSessionTests {
    let logger = TestCluster.logger

    @Test func `a tenant function refuses a tenant other than the session's`() async throws {
        try await withStore { store, _ in
            let mine = TenantID(), theirs = TenantID()
            try await store.append(tenant: theirs, stream: try pet(), expected: .any, events: [try named("Theirs")])
            let calls: [PostgresQuery] = [
                "SELECT count(*) FROM read_pets(\(theirs), 0, NULL, 10)",
                "SELECT count(*) FROM read_pet(\(theirs), \(UUID()))",
                "SELECT count(*) FROM read_pets_v2(\(theirs), 0, NULL, 10)",
                "SELECT count(*) FROM read_pet_v2(\(theirs), \(UUID()))",
                "SELECT begin_projection_batch(\(theirs), 'pets', 'v', 'public')",
                """
                SELECT first_seq FROM append_events(\(theirs), '{}', ARRAY['pet'], ARRAY[\(UUID())]::uuid[], ARRAY[-1], ARRAY[1],
                                                    ARRAY['X'], ARRAY['"X"'], ARRAY[1]::smallint[], ARRAY['{}'])
                """,
            ]
            for call in calls {
                await #expect {
                    try await store.database.withTenant(mine) { session in try await session.run(call) }
                } throws: { error in
                    (error as? PSQLError)?.serverInfo?[.sqlState] == "42501"
                }
            }
            #expect(try await store.read(tenant: theirs).count == 1, "nothing was appended to the other tenant")
        }
    }

    @Test func `a tenant function called outside any session is refused`() async throws {
        try await withStore { store, database in
            let tenant = TenantID()
            try await store.append(tenant: tenant, stream: try pet(), expected: .any, events: [try named("Rex")])
            await #expect {
                try await rows(database.appURL, "SELECT count(*) FROM read_pets(\(tenant), 0, NULL, 10)", as: Int64.self)
            } throws: { error in
                (error as? PSQLError)?.serverInfo?[.sqlState] == "42501"
            }
            await #expect {
                try await rows(database.appURL, "SELECT count(*) FROM read_pets_v2(\(tenant), 0, NULL, 10)", as: Int64.self)
            } throws: { error in
                (error as? PSQLError)?.serverInfo?[.sqlState] == "42501"
            }
        }
    }

    @Test func `no function enters a tenant by itself, the owner's purge included`() async throws {
        let database = try await TestCluster.shared.database()
        let setters = try await rows(database.superuserURL, """
            SELECT p.proname::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
             WHERE n.nspname = 'public' AND p.prosrc ~ 'set_config\\s*\\(\\s*''app\\.tenant_id'''
            """, as: String.self)
        #expect(setters.isEmpty, "these functions set app.tenant_id: \(setters)")
        #expect(try await scalar(database.superuserURL,
                                 "SELECT count(*)::int FROM pg_proc WHERE proname = 'purge_tenant_rows' AND has_function_privilege('petstore_app', oid, 'EXECUTE')",
                                 as: Int.self) == 0, "the purge is the owner's")
    }

    @Test func `the purge removes only the tenant its caller's transaction entered`() async throws {
        try await withStore { store, database in
            let entered = TenantID(), other = TenantID()
            try await store.append(tenant: other, stream: try pet(), expected: .any, events: [try named("Kept")])
            let platform = TenantID(UUID(uuid: (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)))
            let calls: [(TenantID?, PostgresQuery)] = [
                (nil, "SELECT purge_tenant_rows(\(other))"),
                (entered, "SELECT purge_tenant_rows(\(other))"),
                (entered, "SELECT purge_platform_records(\(other), 'kept')"),
                (platform, "SELECT purge_tenant_rows(\(other))"),
            ]
            for (tenant, call) in calls {
                await #expect {
                    try await database.ownerURL.withConnection(logger: logger) { connection in
                        try await connection.withTransaction(logger: logger) { connection in
                            if let tenant { try await TenantDatabase.enter(tenant, inOwnerTransaction: connection, logger: logger) }
                            try await connection.query(call, logger: logger).consume()
                        }
                    }
                } throws: { error in
                    ((error as? PostgresTransactionError)?.closureError as? PSQLError)?.serverInfo?[.sqlState] == "42501"
                }
            }
            #expect(try await store.read(tenant: other).count == 1, "nothing of the other tenant was removed")
        }
    }

    /// What lets a command's projection batch skip the checks its append made (InlineBatchStart):
    /// the session knows the appends its transaction made, and forgets those a savepoint undid.
    @Test func `a session knows the appends its transaction stands by`() async throws {
        try await withStore { store, _ in
            let tenant = TenantID()
            try await store.append(tenant: tenant, stream: try pet(), expected: .any, events: [try named("Before")])
            let kept = try await store.database.withTenant(tenant) { session in
                struct Undo: Error {}
                var undone: Int64 = 0
                await #expect(throws: Undo.self) {
                    try await session.withSavepoint { session in
                        undone = try await store.append([StreamAppend(stream: try pet(), expected: .any, events: [try named("Undone")])],
                                                        in: session).lastSeq
                        #expect(session.appended(through: undone))
                        throw Undo()
                    }
                }
                #expect(undone == 2 && !session.appended(through: undone), "the savepoint rolled the append back")
                #expect(!session.appended(through: 1), "an append of another transaction")
                let stands = try await store.append([StreamAppend(stream: try pet(), expected: .any, events: [try named("Stands")])],
                                                    in: session).lastSeq
                #expect(stands == 2 && session.appended(through: stands))
                return session
            }
            #expect(!kept.appended(through: 2), "the transaction is over")
        }
    }

    @Test func `a session cannot be used after its unit of work ended`() async throws {
        try await withStore { store, _ in
            let tenant = TenantID()
            let kept = try await store.database.withTenant(tenant) { session in session }
            await #expect(throws: DatabaseError.self) { try await kept.run("SELECT 1") }
        }
    }

    @Test(arguments: [Login.owner, .superuser])
    func `a pool given an owner or superuser URL runs as the application role and sees no tenant rows unscoped`(_ login: Login) async throws {
        try await withStore { store, database in
            let tenant = TenantID()
            try await store.append(tenant: tenant, stream: try pet(), expected: .any, events: [try named("Rex")])
            let url = login == .owner ? database.ownerURL : database.superuserURL
            // The owner reads every head through its owner_reads_heads policy; a superuser reads everything.
            #expect(try await scalar(url, "SELECT count(*) FROM event_heads", as: Int64.self) == 1, "the login itself sees the row")
            try await withPool(url.clientConfiguration(maximumConnections: 2, pool: "serving-check")) { client in
                let (role, events, heads) = try #require(try await client.query("""
                    SELECT current_user::text, (SELECT count(*) FROM events), (SELECT count(*) FROM event_heads)
                    """, logger: logger).decode((String, Int64, Int64).self).first(where: { _ in true }))
                #expect(role == LocalCluster.appRole)
                #expect(events == 0 && heads == 0, "an unscoped query through the pool fails closed")
                try await TenantDatabase(client: client, logger: logger).checkRole()
            }
        }
    }

    @Test(arguments: [Login.owner, .superuser])
    func `a pool that stays the owner or a superuser is refused before serving`(_ login: Login) async throws {
        let database = try await TestCluster.shared.database()
        var configuration = (login == .owner ? database.ownerURL : database.superuserURL).clientConfiguration(maximumConnections: 1)
        configuration.options.additionalStartupParameters.removeAll { $0.0 == "role" }
        try await withPool(configuration) { client in
            await #expect {
                try await TenantDatabase(client: client, logger: logger).checkRole()
            } throws: { error in
                guard let error = error as? DatabaseError, error.code == .unsafeRole else { return false }
                return error.description.contains(login == .owner ? "owner" : "superuser")
            }
        }
    }

    enum Login: String, Sendable, CustomTestStringConvertible {
        case owner, superuser
        var testDescription: String { rawValue }
    }

    func withPool(_ configuration: PostgresClient.Configuration, _ body: (PostgresClient) async throws -> Void) async throws {
        let client = PostgresClient(configuration: configuration, backgroundLogger: logger)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            defer { group.cancelAll() }
            try await body(client)
        }
    }
}
