import EventLog
import Foundation
import NIOCore
import PetstoreTesting
import PostgresNIO
import Testing

/// A command's events, the read-model rows they make and the projection's checkpoint commit in
/// one transaction: what is answered is readable, and what cannot be projected is not recorded.
@Suite struct InlineProjectionTests {
    @Test(arguments: Placements.all) func `a command whose read-model row cannot be written is not recorded either`(placement: String) async throws {
        try await withApp(.router, allowUnmappedErrors: true, placement: placement) { app, client in
            let tenant = try await app.tenantClient(client, slug: "atomic-shop")
            let first = try await tenant.register("Rex")
            // Every pets table where the tenant's rows can be refuses one name, as a broken
            // projection would refuse an event.
            try await app.dataURL(of: "atomic-shop").withConnection(logger: TestCluster.logger) { connection in
                try await connection.query("""
                    CREATE FUNCTION refuse_boom() RETURNS trigger LANGUAGE plpgsql AS $$
                    BEGIN
                      IF NEW.name = 'Boom' THEN RAISE EXCEPTION 'the read model refuses Boom'; END IF;
                      RETURN NEW;
                    END $$
                    """, logger: TestCluster.logger).consume()
                try await connection.query("""
                    DO $$ DECLARE t regclass; BEGIN
                      FOR t IN SELECT c.oid::regclass FROM pg_class c WHERE c.relname = 'pets' AND c.relkind = 'r' LOOP
                        EXECUTE format('CREATE TRIGGER refuse_boom BEFORE INSERT ON %s FOR EACH ROW EXECUTE FUNCTION refuse_boom()', t);
                      END LOOP;
                    END $$
                    """, logger: TestCluster.logger).consume()
            }
            let before = try await app.eventCount("atomic-shop")
            let listed = try await tenant.listIDs()
            let refused = try await tenant.call(.post, "/api/pets", json: #"{"name":"Boom","species":"dog"}"#)
            #expect(refused.status.code == 500, "\(refused.status): \(String(buffer: refused.body))")
            #expect(try await app.eventCount("atomic-shop") == before, "the event rolled back with its read-model row")
            let names = try await app.events(of: "PetRegistered", tenant: "atomic-shop").compactMap { $0.data["name"] }
            #expect(names.contains(.string("Rex")) && !names.contains(.string("Boom")), "\(names)")

            // The tenant goes on: the next command and its read are whole.
            let next = try await tenant.register("Fido")
            #expect(try await tenant.call(.get, "/api/pets/\(next)").status == .ok)
            #expect(listed.contains(first))
            #expect(try await tenant.listIDs() == listed + [next])
        }
    }

    /// The batch start of a command that has appended is a plain statement (InlineBatchStart):
    /// it must take the projection's pair lock before the checkpoint row's, as every other batch
    /// does, or a command and a background pass could each hold one and wait for the other.
    @Test(arguments: Placements.all) func `a command's projection waits for the pair lock before it locks the checkpoint row`(placement: String) async throws {
        try await withApp(.router, placement: placement) { app, client in
            let tenant = try await app.tenantClient(client, slug: "ordered-shop")
            _ = try await tenant.register("Rex")
            let before = try await tenant.listIDs()
            let id = try #require(try await app.catalog.tenant(slug: "ordered-shop")).id.rawValue
            let version = try #require(try await app.database.superuserURL.withConnection(logger: TestCluster.logger) { connection in
                try await connection.query("SELECT version FROM projections WHERE name = 'pets' AND state = 'active'", logger: TestCluster.logger)
                    .decode(String.self).first(where: { _ in true })
            })
            let data = try await app.dataURL(of: "ordered-shop")
            let pair = "pets/\(version)/\(id.uuidString.lowercased())"
            let fido = try await data.withConnection(logger: TestCluster.logger) { holder -> String in
                try await holder.query("SELECT pg_advisory_lock(hashtextextended(\(pair), 0))", logger: TestCluster.logger).consume()
                let command = Task { try await tenant.call(.post, "/api/pets", json: #"{"name":"Fido","species":"dog"}"#) }
                // The command has appended and waits on the pair lock.
                let deadline = ContinuousClock.now + .seconds(10)
                while try await holder.query(
                    """
                    SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted
                       AND ((classid::bigint << 32) | objid::bigint) = hashtextextended(\(pair), 0)
                    """, logger: TestCluster.logger
                ).decode(Int64.self).first(where: { _ in true }) != 1 {
                    guard ContinuousClock.now < deadline else {
                        command.cancel()
                        Issue.record("the command never waited on the pair lock")
                        return ""
                    }
                    try await Task.sleep(for: .milliseconds(5))
                }
                // Waiting there, it has not locked the checkpoint row.
                try await data.withConnection(logger: TestCluster.logger) { other in
                    try await other.query("BEGIN", logger: TestCluster.logger).consume()
                    do {
                        let row = try await other.query("""
                            SELECT applied_seq FROM projection_checkpoints
                             WHERE tenant_id = \(id) AND projection = 'pets' AND version = \(version) FOR UPDATE NOWAIT
                            """, logger: TestCluster.logger).decode(Int64.self).first(where: { _ in true })
                        #expect(row != nil, "the checkpoint row is there")
                    } catch {
                        Issue.record("the command waiting on the pair lock holds the checkpoint row: \(String(reflecting: error))")
                    }
                    try await other.query("ROLLBACK", logger: TestCluster.logger).consume()
                }
                try await holder.query("SELECT pg_advisory_unlock(hashtextextended(\(pair), 0))", logger: TestCluster.logger).consume()
                let answered = try await command.value
                #expect(answered.status == .created, "\(answered.status): \(String(buffer: answered.body))")
                return try #require(try tenant.object(answered)["id"] as? String)
            }
            let listed = try await tenant.listIDs()
            #expect(listed == before + [fido], "the waiting command's pet is readable once it is answered")
        }
    }
}
