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
}
