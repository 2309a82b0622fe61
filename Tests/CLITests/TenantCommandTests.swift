import Database
import Foundation
import PetstoreTesting
import Testing

/// The operator's CLI for tenants and keys, run as a real process against a private cluster.
@Suite(.serialized) struct TenantCommandTests {
    func run(_ arguments: [String], in directory: URL) async throws -> (status: Int32, output: String) {
        var environment = ProcessInfo.processInfo.environment
        environment.removeValue(forKey: "DATABASE_URL")
        let child = try ChildProcess.spawn(
            [ServeCommandTests.binary] + arguments + ["--data-dir", directory.path, "--log-level", "error"], environment: environment)
        let status = await child.wait()
        return (status, child.output.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    @Test func `tenants and keys are created, listed, changed and revoked from the command line`() async throws {
        let directory = FileManager.default.temporaryDirectory.appending(path: "petstore-cli-\(UUID().uuidString.prefix(8))")
        defer { try? FileManager.default.removeItem(at: directory) }

        let platform = try await run(["key", "create", "--platform", "--name", "ops"], in: directory)
        #expect(platform.status == 0, "\(platform.output)")
        #expect(platform.output.hasPrefix("ppk_"))

        let created = try await run(["tenant", "create", "--slug", "cli-pets", "--name", "CLI Pets", "--plan", "basic",
                               "--admin-email", "boss@cli.test"], in: directory)
        #expect(created.status == 0, "\(created.output)")
        #expect(created.output.contains("cli-pets") && created.output.contains("basic") && created.output.contains("active"))
        #expect(created.output.contains("admin API key (shown once): psk_"))

        let duplicate = try await run(["tenant", "create", "--slug", "cli-pets", "--name", "Again"], in: directory)
        #expect(duplicate.status != 0)
        #expect(duplicate.output.contains("slug is taken"), "\(duplicate.output)")
        let reserved = try await run(["tenant", "create", "--slug", "admin", "--name", "Nope"], in: directory)
        #expect(reserved.status != 0)

        let member = try await run(["key", "create", "--tenant", "cli-pets", "--email", "vet@cli.test", "--role", "member"], in: directory)
        #expect(member.status == 0 && member.output.hasPrefix("psk_"), "\(member.output)")

        let updated = try await run(["tenant", "update", "cli-pets", "--plan", "premium", "--status", "suspended"], in: directory)
        #expect(updated.status == 0 && updated.output.contains("premium") && updated.output.contains("suspended"), "\(updated.output)")

        let prefix = String(member.output.prefix(12))
        let revoked = try await run(["key", "revoke", prefix], in: directory)
        #expect(revoked.status == 0 && revoked.output == "revoked \(prefix)", "\(revoked.output)")
        let again = try await run(["key", "revoke", prefix], in: directory)
        #expect(again.status == 0 && again.output == "\(prefix) was already revoked", "revoking is idempotent")
        #expect(try await run(["key", "revoke", "psk_zzzzzzzz"], in: directory).status != 0, "an unknown key is an error")

        // The tenant's only admin key stays unless the operator insists.
        let adminKey = try #require(created.output.components(separatedBy: "admin API key (shown once): ").last)
        let adminPrefix = String(adminKey.prefix(12))
        let kept = try await run(["key", "revoke", adminPrefix], in: directory)
        #expect(kept.status != 0 && kept.output.contains("last active admin key"), "\(kept.output)")
        let forced = try await run(["key", "revoke", adminPrefix, "--force"], in: directory)
        #expect(forced.status == 0 && forced.output == "revoked \(adminPrefix)", "\(forced.output)")

        let shown = try await run(["tenant", "show", "cli-pets"], in: directory)
        #expect(shown.output.contains("boss@cli.test\tadmin") && shown.output.contains("vet@cli.test\tmember"))
        #expect(shown.output.contains("\(prefix)\tmember\trevoked"))

        let listed = try await run(["tenant", "list"], in: directory)
        #expect(listed.output.split(separator: "\n").count == 1 && listed.output.hasPrefix("cli-pets\t"))
        #expect(try await run(["tenant", "show", "nobody-here"], in: directory).status != 0)
    }

    @Test func `an offboarded tenant is exported, purged with a signed receipt, and its slug kept until released`() async throws {
        let directory = FileManager.default.temporaryDirectory.appending(path: "petstore-cli-\(UUID().uuidString.prefix(8))")
        defer { try? FileManager.default.removeItem(at: directory) }
        let export = directory.appending(path: "leaving.ndjson")

        #expect(try await run(["tenant", "create", "--slug", "leaving", "--name", "Leaving", "--plan", "premium"], in: directory).status == 0)
        #expect(try await run(["tenant", "purge", "leaving", "--yes", "--now"], in: directory).output.contains("only an offboarding tenant"))
        let offboarded = try await run(["tenant", "offboard", "leaving"], in: directory)
        #expect(offboarded.status == 0 && offboarded.output.contains("offboarding") && offboarded.output.contains("purged at"), "\(offboarded.output)")

        let unconfirmed = try await run(["tenant", "purge", "leaving", "--now"], in: directory)
        #expect(unconfirmed.status != 0 && unconfirmed.output.contains("--yes"), "\(unconfirmed.output)")
        let early = try await run(["tenant", "purge", "leaving", "--yes"], in: directory)
        #expect(early.status != 0 && early.output.contains("due for removal"), "\(early.output)")

        let purged = try await run(["tenant", "purge", "leaving", "--yes", "--now", "--export", export.path], in: directory)
        #expect(purged.status == 0, "\(purged.output)")
        #expect(purged.output.contains("exported") && purged.output.contains("purged leaving"), "\(purged.output)")
        #expect(purged.output.contains("dropped\tschema t_") && purged.output.contains("rows removed"), "\(purged.output)")
        // The export taken before the purge still verifies, and ends where the receipt says.
        let verified = try await run(["audit", "verify", export.path], in: directory)
        #expect(verified.status == 0, "\(verified.output)")
        let lastSeq = try #require(purged.output.split(separator: "\n").first { $0.hasPrefix("log\tlast seq ") })
        let seq = try #require(lastSeq.split(separator: " ").dropFirst(2).first.map { $0.split(separator: "\t")[0] })
        #expect(verified.output.contains("ok: \(seq) events") && verified.output.contains("checkpoint at seq \(seq) signed"), "\(verified.output) / \(lastSeq)")

        let receipt = try await run(["tenant", "receipt", "leaving"], in: directory)
        #expect(receipt.status == 0 && receipt.output.contains("signature: valid"), "\(receipt.output)")
        #expect(try await run(["tenant", "show", "leaving"], in: directory).status != 0)
        #expect(try await run(["tenant", "purge", "leaving", "--yes", "--now"], in: directory).output.contains("was purged before"))

        let taken = try await run(["tenant", "create", "--slug", "leaving", "--name", "Newcomer"], in: directory)
        #expect(taken.status != 0 && taken.output.contains("slug is taken"), "\(taken.output)")
        #expect(try await run(["tenant", "release-slug", "leaving"], in: directory).status == 0)
        #expect(try await run(["tenant", "create", "--slug", "leaving", "--name", "Newcomer"], in: directory).status == 0)
    }
}
