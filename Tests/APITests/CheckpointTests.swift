@testable import API
@testable import Operations
import Crypto
import Database
import EventLog
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import PetstoreTesting
import Tenancy
import Testing

@Suite struct CheckpointSigningTests {
    let tenant = TenantID(UUID())
    let hash = [UInt8](repeating: 7, count: 32)

    @Test func `a checkpoint verifies with the signer's key and with no other, and not once altered`() throws {
        let signer = CheckpointSigner.ephemeral()
        let checkpoint = try signer.sign(tenant: tenant, seq: 42, headHash: hash)
        #expect(checkpoint.isSigned(by: signer.publicKey))
        #expect(!checkpoint.isSigned(by: CheckpointSigner.ephemeral().publicKey))
        let moved = Checkpoint(tenant: tenant, seq: 41, headHash: hash, signedAt: checkpoint.signedAt, keyID: checkpoint.keyID,
                               signature: checkpoint.signature)
        #expect(!moved.isSigned(by: signer.publicKey), "another seq under the same signature")
        var flipped = checkpoint.signature
        flipped[0] ^= 1
        let forged = Checkpoint(tenant: tenant, seq: 42, headHash: hash, signedAt: checkpoint.signedAt, keyID: checkpoint.keyID, signature: flipped)
        #expect(!forged.isSigned(by: signer.publicKey))
    }

    @Test func `a checkpoint tells a cut tail and a rewritten event from an intact log`() throws {
        let checkpoint = try CheckpointSigner.ephemeral().sign(tenant: tenant, seq: 42, headHash: hash)
        #expect(checkpoint.check(hashAtSeq: hash) == .consistent)
        #expect(checkpoint.check(hashAtSeq: nil) == .truncated)
        #expect(checkpoint.check(hashAtSeq: [UInt8](repeating: 8, count: 32)) == .rewritten)
    }

    @Test func `the key is made once in its file and read back from it`() throws {
        let file = FileManager.default.temporaryDirectory.appending(path: "petstore-key-\(UUID().uuidString)/signing-key")
        defer { try? FileManager.default.removeItem(at: file.deletingLastPathComponent()) }
        let first = try CheckpointSigner.load(file: file)
        let again = try CheckpointSigner.load(file: file)
        #expect(first.keyID == again.keyID)
        let mode = try FileManager.default.attributesOfItem(atPath: file.path)[.posixPermissions] as? Int
        #expect(mode == 0o600)
        try Data("not a key".utf8).write(to: file)
        #expect(throws: CheckpointKeyError.self) { try CheckpointSigner.load(file: file) }
    }
}

@Suite struct CheckpointRouteTests {
    func sign(_ app: TestApp, _ client: some TestClientProtocol, slug: String) async throws -> SentResponse {
        try await send(client, "/api/admin/tenants/\(slug)/checkpoints", .post, [.authorization: "Bearer \(app.platformKey)"])
    }

    @Test(arguments: Placements.all) func `a checkpoint signed on demand is listed, and verifies with the published key`(placement: String) async throws {
        try await withApp(.router, placement: placement) { app, client in
            let shop = try await app.tenantClient(client, slug: "signed")
            _ = try await shop.register("Rex")
            let signed = try await sign(app, client, slug: "signed")
            #expect(signed.status == .created)
            let total = try await app.eventCount("signed")
            let listed = try shop.object(try await shop.call(.get, "/api/events/checkpoints"))
            let item = try #require((listed["items"] as? [[String: Any]])?.first)
            #expect(item["seq"] as? Int == total)

            let jwkResponse = try await send(client, "/.well-known/petstore-signing-key", .get, [:])
            let jwk = try #require(try JSONSerialization.jsonObject(with: Data(buffer: jwkResponse.body)) as? [String: Any])
            #expect(jwk["kty"] as? String == "OKP" && jwk["crv"] as? String == "Ed25519")
            var x = try #require(jwk["x"] as? String).replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
            while x.count % 4 != 0 { x += "=" }
            let raw = try #require(Data(base64Encoded: x))
            let key = try Curve25519.Signing.PublicKey(rawRepresentation: raw)
            let tenant = try #require(try await app.catalog.tenant(slug: "signed"))
            let seq = try #require(item["seq"] as? Int)
            let headHash = try #require([UInt8](hexString: item["head_hash"] as? String ?? ""))
            let signedAt = try #require(item["signed_at"] as? String)
            let keyID = try #require(item["key_id"] as? String)
            let signature = try #require([UInt8](hexString: item["signature"] as? String ?? ""))
            let checkpoint = Checkpoint(tenant: tenant.id, seq: Int64(seq), headHash: headHash, signedAt: signedAt, keyID: keyID, signature: signature)
            #expect(checkpoint.isSigned(by: key), "anyone with the published key can check it")
            #expect(jwk["kid"] as? String == checkpoint.keyID)

            let again = try await sign(app, client, slug: "signed")
            #expect(String(buffer: again.body) == String(buffer: signed.body), "an unchanged head keeps its checkpoint")
            #expect(try await sign(app, client, slug: "nobody-here").status == .notFound)
            let verify = try shop.object(try await shop.call(.get, "/api/events/verify"))
            #expect(verify["ok"] as? Bool == true)
            #expect((verify["checkpoint"] as? [String: Any])?["result"] as? String == "consistent")
        }
    }

    @Test(arguments: Placements.all) func `a cut tail that the chain alone cannot see fails verification against the checkpoint`(placement: String) async throws {
        try await withApp(.router, placement: placement) { app, client in
            let shop = try await app.tenantClient(client, slug: "truncated")
            for name in ["A", "B", "C"] { _ = try await shop.register(name) }
            #expect(try await sign(app, client, slug: "truncated").status == .created)
            let tenant = try #require(try await app.catalog.tenant(slug: "truncated"))
            let total = try await app.eventCount("truncated")
            // Cut the last two events and move the head back so the shorter chain is consistent.
            try await app.dataURL(of: "truncated").withConnection(logger: TestCluster.logger) { connection in
                try await connection.query("SET session_replication_role = replica", logger: TestCluster.logger).consume()
                try await connection.query("DELETE FROM events WHERE tenant_id = \(tenant.id.rawValue) AND seq > \(Int64(total - 2))",
                                           logger: TestCluster.logger).consume()
                try await connection.query("""
                    UPDATE event_heads h SET last_seq = e.seq, head_hash = e.hash FROM events e
                     WHERE h.tenant_id = \(tenant.id.rawValue) AND e.tenant_id = h.tenant_id AND e.seq = \(Int64(total - 2))
                    """, logger: TestCluster.logger).consume()
            }
            let chain = try await app.store.verify(tenant: tenant.id)
            #expect(chain.valid, "the hash chain by itself is consistent after the cut")
            let verify = try shop.object(try await shop.call(.get, "/api/events/verify"))
            #expect(verify["ok"] as? Bool == false)
            #expect((verify["checkpoint"] as? [String: Any])?["result"] as? String == "truncated")
            #expect(verify["first_bad_seq"] as? Int == total - 1)
        }
    }

    @Test(arguments: Placements.all) func `tenants whose log grew are due for a checkpoint until they get one`(placement: String) async throws {
        try await withApp(.router, placement: placement) { app, client in
            let shop = try await app.tenantClient(client, slug: "scheduled")
            let tenant = try #require(try await app.catalog.tenant(slug: "scheduled"))
            #expect(try await app.store.checkpointsDue().contains(tenant.id))
            let signed = try await app.store.checkpoint(tenant: tenant.id, signer: app.dependencies.signer)
            if placement == "database" {
                // Its head is in its own database, so it is always listed; signing it again keeps
                // the checkpoint it has while the head has not moved.
                #expect(try await app.store.checkpoint(tenant: tenant.id, signer: app.dependencies.signer) == signed)
                #expect(try await app.store.checkpoints(tenant: tenant.id).count == 1)
            } else {
                #expect(try await !app.store.checkpointsDue().contains(tenant.id))
            }
            _ = try await shop.register("Later")
            #expect(try await app.store.checkpointsDue().contains(tenant.id))
        }
    }

    @Test(arguments: Placements.all) func `the schedule signs the tenants that are due`(placement: String) async throws {
        try await withApp(.router, placement: placement) { app, client in
            let shop = try await app.tenantClient(client, slug: "on-schedule")
            _ = try await shop.register("Rex")
            let tenant = try #require(try await app.catalog.tenant(slug: "on-schedule"))
            let service = CheckpointSchedule.service(store: app.store, signer: app.dependencies.signer, interval: .milliseconds(50),
                                                     logger: TestCluster.logger)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await service.run() }
                var kept: [Checkpoint] = []
                for _ in 0..<100 where kept.isEmpty {
                    try await Task.sleep(for: .milliseconds(20))
                    kept = try await app.store.checkpoints(tenant: tenant.id)
                }
                group.cancelAll()
                #expect(kept.first?.seq == Int64(try await app.eventCount("on-schedule")))
                #expect(kept.first?.isSigned(by: app.dependencies.signer.publicKey) == true)
            }
        }
    }
}
