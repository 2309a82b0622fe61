import Database
import EventLog
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Operations
import PetstoreTesting
import PostgresNIO
import Tenancy
import Testing

@Suite struct PurgeTests {
    @Test(arguments: ["shared", "schema", "database"])
    func `a purged tenant leaves no row, schema, partition or database behind, and its receipt verifies`(placement: String) async throws {
        try await withApp(.router, placement: placement) { app, client in
            let suffix = UUID().uuidString.prefix(8).lowercased()
            let gone = try await app.tenantClient(client, slug: "gone-\(suffix)", placement: placement)
            let kept = try await app.tenantClient(client, slug: "kept-\(suffix)", placement: placement)
            let id = try #require(try await app.catalog.tenant(slug: gone.slug)).id

            // Traces of every kind: pets, a keyed command, a cross-tenant attempt against it, a
            // checkpoint, analytics and rate-limit state.
            _ = try await gone.register("Rex")
            _ = try await kept.register("Fido")
            let keyed = try await gone.call(.post, "/api/pets", json: #"{"name":"Once","species":"cat"}"#,
                                            extra: [HTTPField.Name("Idempotency-Key")!: "purge-\(suffix)"])
            #expect(keyed.status == .created)
            #expect(try await send(client, "/api/pets", .get, headers(kept.key, tenant: gone.slug)).status == .notFound)
            await app.dependencies.securityLog.flush()
            _ = try #require(try await app.store.checkpoint(tenant: id, signer: app.dependencies.signer))
            try await app.dependencies.runtime.catchUpAll()
            let main = app.database.superuserURL
            #expect(try await Traces.find(id, slug: gone.slug, in: main).count > 5, "the scan finds the tenant before the purge")

            let purge = try #require(app.dependencies.purge())
            // Only an offboarding tenant, and before its removal date only on purpose.
            await #expect(throws: TenancyError.self) { try await purge.purge(slug: gone.slug, early: true) }
            #expect(try await send(client, "/api/admin/tenants/\(gone.slug)", .delete, headers(app.platformKey)).status == .accepted)
            await #expect(throws: TenancyError.self) { try await purge.purge(slug: gone.slug, early: false) }
            // Offboarding is itself an event of the log.
            let events = try await app.eventCount(gone.slug)

            guard case .purged(let receipt) = try await purge.purge(slug: gone.slug, early: true) else {
                Issue.record("the first purge found the tenant purged already")
                return
            }
            #expect(receipt.isSigned(by: app.dependencies.signer.publicKey))
            #expect(receipt.lastSeq == Int64(events))
            #expect(receipt.tenant == id && receipt.slug == gone.slug && receipt.placement == placement)
            // Keys are tables as PostgreSQL names them (schema-qualified off the search path),
            // prefixed with the database for a database of its own.
            func removed(from table: String) -> Int64 {
                receipt.removed.filter { $0.key.split(whereSeparator: { $0 == "." || $0 == " " }).last.map(String.init) == table }.values.reduce(0, +)
            }
            #expect(removed(from: "events") == Int64(events), "\(receipt.removed)")
            #expect(removed(from: "pets") >= 3, "the sample pet and two: \(receipt.removed)")
            #expect(removed(from: "api_keys") >= 1 && removed(from: "users") >= 1 && removed(from: "tenants") >= 1, "\(receipt.removed)")
            #expect(removed(from: "security_events") >= 1 && removed(from: "idempotency_keys") >= 1 && removed(from: "checkpoints") == 1,
                    "\(receipt.removed)")
            switch placement {
            case "schema": #expect(receipt.dropped.contains { $0.hasPrefix("schema t_") } && receipt.dropped.contains { $0.hasPrefix("table events_t_") })
            case "database": #expect(receipt.dropped.contains { $0.hasPrefix("database t_") })
            default: #expect(receipt.dropped.isEmpty)
            }

            // Nothing of it anywhere: the main database, and every database of the second server
            // but other tenants' own (which hold nothing of another tenant) and the template of
            // tenant databases (which another test's onboarding may be closing to connections).
            let left = try await Traces.find(id, slug: gone.slug, in: main)
            #expect(left == [])
            let second = try await TestCluster.second.superuserURL(database: "postgres")
            let databases = try await second.withConnection(logger: TestCluster.logger) { connection in
                try await connection.query(
                    "SELECT datname FROM pg_database WHERE datallowconn AND datname !~ '^t_[0-9a-f]{32}$' AND datname <> \(HomeDatabases.template)",
                    logger: TestCluster.logger
                ).decode(String.self).all()
            }
            for database in databases {
                #expect(try await Traces.find(id, slug: gone.slug, in: second.with(database: database)) == [], "database \(database)")
            }
            #expect(try await Traces.find(id, slug: gone.slug, in: second) == [])
            // The receipt is the one record kept, and it reserves the slug.
            #expect(try await scalar(main, "SELECT count(*)::int FROM purge_receipts WHERE purged_tenant = \(id)", as: Int.self) == 1)

            // The API knows it no more: its keys are gone (401), its slug is unknown (404 for a
            // platform admin); the others are as they were and their chains verify.
            let after = try await gone.call(.get, "/api/pets")
            #expect(after.status == .unauthorized, "\(String(buffer: after.body))")
            #expect(try await send(client, "/api/admin/tenants/\(gone.slug)", .get, headers(app.platformKey)).status == .notFound)
            #expect(try await kept.listIDs().count == 2)
            let keptID = try #require(try await app.catalog.tenant(slug: kept.slug)).id
            #expect(try await app.store.verify(tenant: keptID).valid)

            // A second run finds the receipt.
            guard case .alreadyPurged(let again) = try await purge.purge(slug: gone.slug, early: true) else {
                Issue.record("a second purge did not find the receipt")
                return
            }
            #expect(again == receipt)

            // The slug stays reserved until released on purpose.
            let body = #"{"slug":"\#(gone.slug)","name":"Taker","plan":"free"}"#
            var fields = headers(app.platformKey)
            fields[.contentType] = "application/json"
            let taken = try await send(client, "/api/admin/tenants", .post, fields, body: ByteBuffer(string: body))
            #expect(taken.status == .conflict, "\(String(buffer: taken.body))")
            #expect(try await purge.releaseSlug(gone.slug))
            let retaken = try await send(client, "/api/admin/tenants", .post, fields, body: ByteBuffer(string: body))
            #expect(retaken.status == .created, "\(String(buffer: retaken.body))")
        }
    }

    @Test func `the schedule purges offboarded tenants whose retention has passed, and no other`() async throws {
        try await withApp(.router) { app, client in
            let due = try await app.tenantClient(client, slug: "due-now")
            let later = try await app.tenantClient(client, slug: "due-later")
            let serving = try await app.tenantClient(client, slug: "still-serving")
            for tenant in [due, later] {
                #expect(try await send(client, "/api/admin/tenants/\(tenant.slug)", .delete, headers(app.platformKey)).status == .accepted)
            }
            // As if the retention had passed for one of them.
            try await app.database.superuserURL.withConnection(logger: TestCluster.logger) { connection in
                try await connection.query("UPDATE tenants SET removal_scheduled_at = now() - interval '1 second' WHERE slug = \(due.slug)",
                                           logger: TestCluster.logger).consume()
            }
            #expect(try await app.dependencies.purgeDue() == [due.slug])
            #expect(try await app.catalog.tenant(slug: due.slug) == nil)
            #expect(try await app.catalog.tenant(slug: later.slug)?.status == .offboarding)
            #expect(try await serving.listIDs().count == 1)
            #expect(try await app.dependencies.purgeDue() == [])
        }
    }

    @Test
    func `a purge stopped after the tenant's database was dropped is finished by the next run`() async throws {
        try await withApp(.router, placement: "database") { app, client in
            let gone = try await app.tenantClient(client, slug: "half-gone", placement: "database")
            _ = try await gone.register("Rex")
            let record = try #require(try await app.catalog.tenant(slug: gone.slug))
            let events = try await app.eventCount(gone.slug)
            #expect(try await send(client, "/api/admin/tenants/\(gone.slug)", .delete, headers(app.platformKey)).status == .accepted)
            // As a run that died between its steps leaves it: the head written down, the database gone.
            let purge = try #require(app.dependencies.purge())
            let main = app.database.superuserURL
            try await main.withConnection(logger: TestCluster.logger) { connection in
                try await connection.query("""
                    INSERT INTO purge_receipts (purged_tenant, slug, placement, server, last_seq, head_hash)
                    SELECT \(record.id), \(record.slug), 'database', 'second', \(Int64(events)), NULL
                    """, logger: TestCluster.logger).consume()
            }
            let server = try await TestCluster.second.superuserURL(database: "postgres")
            await app.dependencies.homePools?.retire(server: "second", database: HomeDatabases.name(for: record.id))
            try await server.withConnection(logger: TestCluster.logger) { connection in
                try await connection.query(PostgresQuery(unsafeSQL: "DROP DATABASE \(HomeDatabases.name(for: record.id)) WITH (FORCE)"),
                                           logger: TestCluster.logger).consume()
            }

            guard case .purged(let receipt) = try await purge.purge(slug: gone.slug, early: true) else {
                Issue.record("the rerun found the tenant purged already")
                return
            }
            #expect(receipt.lastSeq == Int64(events), "the head written down by the first run")
            #expect(receipt.isSigned(by: app.dependencies.signer.publicKey))
            #expect(try await Traces.find(record.id, slug: gone.slug, in: main) == [])
            #expect(try await app.catalog.tenant(slug: gone.slug) == nil)
        }
    }
}

/// Where a tenant could be left in one database: rows of any table in any schema whose text
/// holds its id (with or without dashes) or its slug, byte columns that hold them, and schemas,
/// tables or databases named for it. The purge receipts are left out: the one record kept.
enum Traces {
    static func find(_ tenant: TenantID, slug: String, in url: DatabaseURL) async throws -> [String] {
        let dashed = tenant.description
        let bare = dashed.replacingOccurrences(of: "-", with: "")
        let logger = TestCluster.logger
        return try await url.withConnection(logger: logger) { connection in
            var found: [String] = []
            let names = try await connection.query("""
                SELECT 'schema ' || nspname FROM pg_namespace WHERE strpos(nspname, \(bare)) > 0
                UNION ALL SELECT 'relation ' || relname FROM pg_class WHERE strpos(relname, \(bare)) > 0
                UNION ALL SELECT 'database ' || datname FROM pg_database WHERE strpos(datname, \(bare)) > 0
                """, logger: logger).decode(String.self).all()
            found += names
            let tables = try await connection.query("""
                SELECT format('%I.%I', n.nspname, c.relname),
                       coalesce(array_agg(quote_ident(a.attname)) FILTER (WHERE a.atttypid = 'bytea'::regtype), '{}')
                  FROM pg_class c
                  JOIN pg_namespace n ON n.oid = c.relnamespace
                  LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
                 WHERE c.relkind IN ('r', 'p', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
                   AND c.relname <> 'purge_receipts'
                 GROUP BY 1
                """, logger: logger).decode((String, [String]).self).all()
            for (table, byteColumns) in tables {
                // Names from the catalog, quoted by it; the values are binds.
                var condition = "strpos(t::text, $1) > 0 OR strpos(t::text, $2) > 0 OR strpos(t::text, $3) > 0"
                for column in byteColumns {
                    condition += " OR position(convert_to($1, 'UTF8') IN t.\(column)) > 0 OR position(convert_to($3, 'UTF8') IN t.\(column)) > 0"
                }
                var binds = PostgresBindings()
                binds.append(dashed)
                binds.append(bare)
                binds.append(slug)
                let count = try await connection.query(PostgresQuery(unsafeSQL: "SELECT count(*)::int FROM ONLY \(table) t WHERE \(condition)", binds: binds),
                                                       logger: logger).decode(Int.self).first(where: { _ in true }) ?? 0
                if count > 0 { found.append("\(count) rows in \(table)") }
            }
            return found
        }
    }
}
