import Database
import Foundation
import PetstoreTesting
import Testing

/// The operator's CLI for tenants and keys, run as a real process against a private cluster.
@Suite(.serialized) struct TenantCommandTests {
    func run(_ arguments: [String], in directory: URL) throws -> (status: Int32, output: String) {
        var environment = ProcessInfo.processInfo.environment
        environment.removeValue(forKey: "DATABASE_URL")
        let child = try ChildProcess.spawn(
            [ServeCommandTests.binary] + arguments + ["--data-dir", directory.path, "--log-level", "error"], environment: environment)
        let status = child.wait()
        return (status, child.output.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    @Test func `tenants and keys are created, listed, changed and revoked from the command line`() throws {
        let directory = FileManager.default.temporaryDirectory.appending(path: "petstore-cli-\(UUID().uuidString.prefix(8))")
        defer { try? FileManager.default.removeItem(at: directory) }

        let platform = try run(["key", "create", "--platform", "--name", "ops"], in: directory)
        #expect(platform.status == 0, "\(platform.output)")
        #expect(platform.output.hasPrefix("ppk_"))

        let created = try run(["tenant", "create", "--slug", "cli-pets", "--name", "CLI Pets", "--plan", "basic",
                               "--admin-email", "boss@cli.test"], in: directory)
        #expect(created.status == 0, "\(created.output)")
        #expect(created.output.contains("cli-pets") && created.output.contains("basic") && created.output.contains("active"))
        #expect(created.output.contains("admin API key (shown once): psk_"))

        let duplicate = try run(["tenant", "create", "--slug", "cli-pets", "--name", "Again"], in: directory)
        #expect(duplicate.status != 0)
        #expect(duplicate.output.contains("slug is taken"), "\(duplicate.output)")
        let reserved = try run(["tenant", "create", "--slug", "admin", "--name", "Nope"], in: directory)
        #expect(reserved.status != 0)

        let member = try run(["key", "create", "--tenant", "cli-pets", "--email", "vet@cli.test", "--role", "member"], in: directory)
        #expect(member.status == 0 && member.output.hasPrefix("psk_"), "\(member.output)")

        let updated = try run(["tenant", "update", "cli-pets", "--plan", "premium", "--status", "suspended"], in: directory)
        #expect(updated.status == 0 && updated.output.contains("premium") && updated.output.contains("suspended"), "\(updated.output)")

        let prefix = String(member.output.prefix(12))
        let revoked = try run(["key", "revoke", prefix], in: directory)
        #expect(revoked.status == 0 && revoked.output == "revoked \(prefix)", "\(revoked.output)")
        let again = try run(["key", "revoke", prefix], in: directory)
        #expect(again.status == 0 && again.output == "\(prefix) was already revoked", "revoking is idempotent")
        #expect(try run(["key", "revoke", "psk_zzzzzzzz"], in: directory).status != 0, "an unknown key is an error")

        // The tenant's only admin key stays unless the operator insists.
        let adminKey = try #require(created.output.components(separatedBy: "admin API key (shown once): ").last)
        let adminPrefix = String(adminKey.prefix(12))
        let kept = try run(["key", "revoke", adminPrefix], in: directory)
        #expect(kept.status != 0 && kept.output.contains("last active admin key"), "\(kept.output)")
        let forced = try run(["key", "revoke", adminPrefix, "--force"], in: directory)
        #expect(forced.status == 0 && forced.output == "revoked \(adminPrefix)", "\(forced.output)")

        let shown = try run(["tenant", "show", "cli-pets"], in: directory)
        #expect(shown.output.contains("boss@cli.test\tadmin") && shown.output.contains("vet@cli.test\tmember"))
        #expect(shown.output.contains("\(prefix)\tmember\trevoked"))

        let listed = try run(["tenant", "list"], in: directory)
        #expect(listed.output.split(separator: "\n").count == 1 && listed.output.hasPrefix("cli-pets\t"))
        #expect(try run(["tenant", "show", "nobody-here"], in: directory).status != 0)
    }
}
