import Database
import Domain
import EventLog
import Foundation
import Operations
import PetstoreTesting
import PostgresNIO
import Projectors
import Testing

/// `petstore audit`: exports, and their verification with no database.
@Suite(.serialized) struct AuditCommandTests {
    let directory = FileManager.default.temporaryDirectory.appending(path: "petstore-audit-\(UUID().uuidString.prefix(8))")

    func run(_ arguments: [String], on database: TestDatabase? = nil, common: Bool = true) async throws -> (status: Int32, output: String) {
        var environment = ProcessInfo.processInfo.environment
        environment.removeValue(forKey: "DATABASE_URL")
        if let database {
            environment["DATABASE_URL"] = database.ownerURL.connectionString
            environment["APP_DATABASE_URL"] = database.appURL.connectionString
        }
        let child = try ChildProcess.spawn([ServeCommandTests.binary] + arguments + (common ? ["--data-dir", directory.path, "--log-level", "error"] : []),
                                           environment: environment)
        let status = await child.wait()
        return (status, child.output.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    /// A tenant onboarded with the CLI, exported; returns the export's lines.
    func exported(_ slug: String, on database: TestDatabase) async throws -> [String] {
        #expect(try await run(["tenant", "create", "--slug", slug, "--name", slug], on: database).status == 0)
        let file = directory.appending(path: "\(slug).ndjson")
        let export = try await run(["audit", "export", "--tenant", slug, "--out", file.path], on: database)
        #expect(export.status == 0, "\(export.output)")
        #expect(export.output.contains("exported"))
        return try String(contentsOf: file, encoding: .utf8).split(separator: "\n").map(String.init)
    }

    func verify(_ lines: [String], name: String) async throws -> (status: Int32, output: String) {
        let file = directory.appending(path: name)
        try (lines.joined(separator: "\n") + "\n").write(to: file, atomically: true, encoding: .utf8)
        return try await run(["audit", "verify", file.path])
    }

    @Test func `an export verifies offline, and every kind of damage fails at the right place`() async throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let database = try await TestCluster.shared.database()
        let lines = try await exported("exported", on: database)
        let events = lines.count - 2
        #expect(events >= 3, "header, the onboarding events, checkpoint")

        let intact = try await verify(lines, name: "intact.ndjson")
        #expect(intact.status == 0, "\(intact.output)")
        #expect(intact.output.hasPrefix("ok: \(events) events (seq 1…\(events))"), "\(intact.output)")

        // One changed byte in event 2's data.
        var changed = lines
        changed[2] = changed[2].replacingOccurrences(of: "\"data\":{", with: "\"data\":{\"x\":1,")
        let tampered = try await verify(changed, name: "tampered.ndjson")
        #expect(tampered.status != 0)
        #expect(tampered.output.contains("FAILED: seq 2:"), "\(tampered.output)")

        // The last event gone: the checkpoint covers more than the file holds.
        var cut = lines
        cut.remove(at: lines.count - 2)
        let truncated = try await verify(cut, name: "truncated.ndjson")
        #expect(truncated.status != 0)
        #expect(truncated.output.contains("FAILED: seq \(events):"), "\(truncated.output)")

        // The checkpoint line gone: the file was cut.
        let headless = try await verify(Array(lines.dropLast()), name: "cut.ndjson")
        #expect(headless.status != 0)
        #expect(headless.output.contains("the file was cut"), "\(headless.output)")

        // A bad signature.
        var forged = lines
        forged[lines.count - 1] = forged[lines.count - 1].replacingOccurrences(of: "\"signature\":\"", with: "\"signature\":\"00")
        let badSignature = try await verify(forged, name: "forged.ndjson")
        #expect(badSignature.status != 0)
        #expect(badSignature.output.contains("signature"), "\(badSignature.output)")

        // Another tenant's file presented as this one: the header names another tenant.
        var other = lines
        let id = try #require(lines[0].firstMatch(of: /"tenant":"([0-9a-f-]{36})"/)?.1)
        other[0] = other[0].replacingOccurrences(of: String(id), with: UUID().uuidString.lowercased())
        let foreign = try await verify(other, name: "foreign.ndjson")
        #expect(foreign.status != 0)
        #expect(foreign.output.contains("FAILED: seq 1:"), "\(foreign.output)")

        // Not an export at all.
        let garbage = try await verify(["{\"hello\":1}"], name: "garbage.ndjson")
        #expect(garbage.status != 0)
        #expect(garbage.output.contains("not a petstore export"))
        #expect(try await run(["audit", "verify", directory.appending(path: "missing.ndjson").path]).status != 0)
    }

    @Test func `a person erased from the command line: exports before and after verify, and a replay shows them erased`() async throws {
        let source = try await TestCluster.shared.database()
        #expect(try await run(["tenant", "create", "--slug", "erasing", "--name", "Erasing"], on: source).status == 0)
        #expect(try await run(["key", "create", "--tenant", "erasing", "--email", "dora@erasing.test", "--role", "member"], on: source).status == 0)
        let dora = try #require(try await scalar(source.superuserURL, "SELECT id FROM users WHERE email = 'dora@erasing.test'", as: UUID.self))
        let before = directory.appending(path: "erasing-before.ndjson")
        #expect(try await run(["audit", "export", "--tenant", "erasing", "--out", before.path], on: source).status == 0)

        #expect(try await run(["tenant", "erase-subject", "erasing", "--email", "dora@erasing.test"], on: source).output.contains("--yes"))
        let erased = try await run(["tenant", "erase-subject", "erasing", "--email", "dora@erasing.test", "--yes"], on: source)
        #expect(erased.status == 0, "\(erased.output)")
        #expect(erased.output.contains(dora.uuidString.lowercased()))
        #expect(try await run(["tenant", "erase-subject", "erasing", "--user", dora.uuidString, "--yes"], on: source).status != 0, "gone already")

        let after = directory.appending(path: "erasing-after.ndjson")
        #expect(try await run(["audit", "export", "--tenant", "erasing", "--out", after.path], on: source).status == 0)
        for file in [before, after] {
            let check = try await run(["audit", "verify", file.path])
            #expect(check.status == 0 && check.output.hasPrefix("ok:"), "\(file.lastPathComponent): \(check.output)")
        }
        let exported = try String(contentsOf: after, encoding: .utf8)
        #expect(!exported.contains("dora@"), "the export holds her email sealed, never in the clear")
        #expect(exported.contains("UserErased"))

        // Keys do not travel with an export: replayed elsewhere, every sealed field reads as erased,
        // and she is not there at all.
        let target = try await TestCluster.shared.database()
        let replay = try await run(["audit", "replay", after.path, "--into", target.ownerURL.connectionString], common: false)
        #expect(replay.status == 0, "\(replay.output)")
        #expect(try await scalar(target.superuserURL, "SELECT count(*)::int FROM users WHERE email IS NOT NULL", as: Int.self) == 0)
        #expect(try await scalar(target.superuserURL, "SELECT count(*)::int FROM users WHERE id = \(dora)", as: Int.self) == 1, "her row stays for her revoked key")
        let verified = try await run(["audit", "verify", "--tenant", "erasing"], on: target)
        #expect(verified.status == 0, "\(verified.output)")
    }

    @Test func `live logs verify by tenant or all, and bad arguments are refused`() async throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let database = try await TestCluster.shared.database()
        _ = try await exported("live-one", on: database)
        #expect(try await run(["tenant", "create", "--slug", "live-two", "--name", "Two"], on: database).status == 0)
        let one = try await run(["audit", "verify", "--tenant", "live-one"], on: database)
        #expect(one.status == 0, "\(one.output)")
        #expect(one.output.contains("live-one\tok:") && one.output.contains("checkpoint at seq"))
        let all = try await run(["audit", "verify", "--all"], on: database)
        #expect(all.status == 0)
        #expect(all.output.split(separator: "\n").count == 2)
        #expect(try await run(["audit", "verify", "--tenant", "nobody-here"], on: database).status != 0)
        let reversed = try await run(["audit", "export", "--tenant", "live-one", "--from", "2026-02-01T00:00:00Z", "--to", "2026-01-01T00:00:00Z",
                                "--out", directory.appending(path: "x.ndjson").path], on: database)
        #expect(reversed.status != 0)
        #expect(reversed.output.contains("reversed"))
        let unknown = try await run(["audit", "export", "--tenant", "nobody-here", "--out", directory.appending(path: "y.ndjson").path], on: database)
        #expect(unknown.status != 0)
        #expect(!FileManager.default.fileExists(atPath: directory.appending(path: "y.ndjson").path), "nothing written half-way")
        #expect(try await run(["audit", "verify"], on: database).status != 0)
    }

    @Test func `state prints the pets and the configuration as they were at a time`() async throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let database = try await TestCluster.shared.database()
        #expect(try await run(["tenant", "create", "--slug", "history", "--name", "History"], on: database).status == 0)
        let tenantID = try #require(try await scalar(database.ownerURL, "SELECT id FROM tenants WHERE slug = 'history'", as: UUID.self))
        let tenant = TenantID(tenantID)
        let pet = UUID()
        let mark = try await database.withAppClient { client -> Date in
            let store = EventStore(client: client, logger: TestCluster.logger)
            let stream = try StreamName(type: PetEventCoding.streamType, id: pet)
            let registered = try Pet.decide(.register(id: pet, name: "Before", species: "dog", breed: nil, microchipID: nil, at: Date()), nil)
            try await store.append(tenant: tenant, stream: stream, expected: .noStream, events: try registered.map { event throws(EventLogError) in try PetEventCoding.encode(event) })
            try await Task.sleep(for: .milliseconds(100))
            let mark = Date()
            try await Task.sleep(for: .milliseconds(100))
            let renamed = try Pet.decide(.update(name: "After", species: nil, breed: .unchanged, microchipID: .unchanged, at: Date()), Pet.fold(registered))
            try await store.append(tenant: tenant, stream: stream, expected: .exact(1), events: try renamed.map { event throws(EventLogError) in try PetEventCoding.encode(event) })
            return mark
        }
        let then = try await run(["audit", "state", "--tenant", "history", "--at", Timestamps.format(mark)], on: database)
        #expect(then.status == 0, "\(then.output)")
        #expect(then.output.contains("\(pet.uuidString.lowercased())\tBefore\tdog"), "\(then.output)")
        #expect(!then.output.contains("After"))
        #expect(then.output.contains("include_deleted_pets\tfalse"))
        let now = try await run(["audit", "state", "--tenant", "history", "--at", Timestamps.format(Date())], on: database)
        #expect(now.output.contains("\(pet.uuidString.lowercased())\tAfter\tdog"), "\(now.output)")
        let before = try await run(["audit", "state", "--tenant", "history", "--at", "2000-01-01T00:00:00Z"], on: database)
        #expect(before.status == 0)
        #expect(!before.output.contains(pet.uuidString.lowercased()), "nothing existed yet")
        #expect(try await run(["audit", "state", "--tenant", "history", "--at", "2999-01-01T00:00:00Z"], on: database).status != 0)
        #expect(try await run(["audit", "state", "--tenant", "nobody-here", "--at", "2020-01-01T00:00:00Z"], on: database).status != 0)
        #expect(try await run(["audit", "state", "--tenant", "history", "--at", "last tuesday"], on: database).status != 0)
    }

    @Test func `a database tenant on another server is exported, verified, read at a time and replayed like any other`() async throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let source = try await TestCluster.shared.database()
        let server = try await TestCluster.second.serverURL().connectionString
        #expect(try await run(["server", "add", "second", server], on: source).status == 0)
        let created = try await run(["tenant", "create", "--slug", "far-away", "--name", "Far", "--plan", "enterprise", "--placement", "database",
                               "--server", "second"], on: source)
        #expect(created.status == 0, "\(created.output)")
        let tenantID = try #require(try await scalar(source.ownerURL, "SELECT id FROM tenants WHERE slug = 'far-away'", as: UUID.self))
        #expect(try await scalar(source.ownerURL, "SELECT count(*)::int FROM events WHERE tenant_id = \(tenantID)", as: Int.self) == 0,
                "its log is in its own database")

        let verified = try await run(["audit", "verify", "--tenant", "far-away"], on: source)
        #expect(verified.status == 0 && verified.output.contains("far-away\tok:"), "\(verified.output)")
        let state = try await run(["audit", "state", "--tenant", "far-away", "--at", Timestamps.format(Date())], on: source)
        #expect(state.status == 0 && state.output.contains("\tBiscuit\tdog"), "the sample pet, from its own log: \(state.output)")
        let file = directory.appending(path: "far-away.ndjson")
        let exported = try await run(["audit", "export", "--tenant", "far-away", "--out", file.path], on: source)
        #expect(exported.status == 0, "\(exported.output)")
        let lines = try String(contentsOf: file, encoding: .utf8).split(separator: "\n")
        #expect(lines.count > 3 && lines.contains { $0.contains("\"PetRegistered\"") })

        let target = try await TestCluster.shared.database()
        let replay = try await run(["audit", "replay", file.path, "--into", target.ownerURL.connectionString], common: false)
        #expect(replay.status == 0, "\(replay.output)")
        let again = try await run(["audit", "verify", "--tenant", "far-away"], on: target)
        #expect(again.status == 0 && again.output.contains("far-away\tok:"), "\(again.output)")
        #expect(try await readModels(target, tenant: tenantID).contains { $0.contains("|Biscuit|dog|") }, "its read models rebuilt there")
    }

    /// A pets and config read model, as text rows, read past row-level security.
    /// A schema tenant's pets and config are read from its own views.
    func readModels(_ database: TestDatabase, tenant: UUID) async throws -> [String] {
        let home = try await scalar(database.superuserURL, "SELECT coalesce(location, 'public') FROM tenants WHERE id = \(tenant)", as: String.self)
        let schema = try #require(home)
        let pets = try await rows(database.superuserURL, PostgresQuery(unsafeSQL: """
            SELECT id::text || '|' || registered_seq || '|' || name || '|' || species || '|' || coalesce(breed, '-') || '|' ||
                   coalesce(microchip_id, '-') || '|' || deleted || '|' || created_at || '|' || updated_at || '|' || version
              FROM \(schema).pets WHERE tenant_id = '\(tenant.uuidString)' ORDER BY id
            """), as: String.self)
        let config = try await rows(database.superuserURL, PostgresQuery(unsafeSQL: """
            SELECT key || '|' || value::text || '|' || updated_at FROM \(schema).tenant_config WHERE tenant_id = '\(tenant.uuidString)' ORDER BY key
            """), as: String.self)
        let analytics = try await rows(database.superuserURL, """
            SELECT 'day|' || day || '|' || commands || '|' || events FROM public.analytics_daily WHERE tenant_id = \(tenant)
            UNION ALL
            SELECT 'species|' || species || '|' || active || '|' || removed FROM public.analytics_species WHERE tenant_id = \(tenant)
            ORDER BY 1
            """, as: String.self)
        return pets + ["--"] + config + ["--"] + analytics
    }

    @Test(arguments: ["shared", "schema"])
    func `an export replayed into an empty database rebuilds the same read models, once`(placement: String) async throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let source = try await TestCluster.shared.database()
        #expect(try await run(["tenant", "create", "--slug", "replayed", "--name", "Replayed", "--plan", "premium", "--placement", placement], on: source).status == 0)
        let tenantID = try #require(try await scalar(source.ownerURL, "SELECT id FROM tenants WHERE slug = 'replayed'", as: UUID.self))
        let tenant = TenantID(tenantID)
        try await source.withAppClient { client in
            let store = EventStore(client: client, logger: TestCluster.logger)
            var rex: PetState?
            for (index, name) in ["Rex", "Tom", "Kit"].enumerated() {
                let id = UUID()
                let events = try Pet.decide(.register(id: id, name: name, species: index == 1 ? "cat" : "dog", breed: nil, microchipID: nil, at: Date()), nil)
                try await store.append(tenant: tenant, stream: try StreamName(type: PetEventCoding.streamType, id: id), expected: .noStream,
                                       events: try events.map { event throws(EventLogError) in try PetEventCoding.encode(event) })
                if index == 0 { rex = Pet.fold(events) }
            }
            let renamed = try Pet.decide(.update(name: "Rexy", species: nil, breed: .set("Boxer"), microchipID: .unchanged, at: Date()), rex)
            try await store.append(tenant: tenant, stream: try StreamName(type: PetEventCoding.streamType, id: rex!.id), expected: .exact(1),
                                   events: try renamed.map { event throws(EventLogError) in try PetEventCoding.encode(event) })
            let removed = try Pet.decide(.remove(at: Date()), Pet.fold(renamed, from: rex))
            try await store.append(tenant: tenant, stream: try StreamName(type: PetEventCoding.streamType, id: rex!.id), expected: .exact(1 + renamed.count),
                                   events: try removed.map { event throws(EventLogError) in try PetEventCoding.encode(event) })
        }
        for name in ["pets", "tenant_config", "analytics"] {
            #expect(try await run(["projections", "rebuild", name, "--tenant", "replayed"], on: source).status == 0)
        }
        let file = directory.appending(path: "replayed.ndjson")
        #expect(try await run(["audit", "export", "--tenant", "replayed", "--out", file.path], on: source).status == 0)

        let target = try await TestCluster.shared.database()
        let replay = try await run(["audit", "replay", file.path, "--into", target.ownerURL.connectionString], common: false)
        #expect(replay.status == 0, "\(replay.output)")
        let expected = try await readModels(source, tenant: tenantID)
        #expect(expected.count > 8, "three pets, the sample pet, the default config, and the analytics: a day and two species (Kit and the sample are dogs)")
        #expect(expected.contains("species|dog|2|1") && expected.contains("species|cat|1|0"), "\(expected)")
        #expect(try await readModels(target, tenant: tenantID) == expected, "the same rows, to the microsecond")
        let verified = try await run(["audit", "verify", "--tenant", "replayed"], on: target)
        #expect(verified.status == 0 && verified.output.contains("replayed\tok:"), "\(verified.output)")

        let twice = try await run(["audit", "replay", file.path, "--into", target.ownerURL.connectionString], common: false)
        #expect(twice.status != 0)
        #expect(twice.output.contains("already holds"))

        // A damaged file is refused before the target is touched.
        var lines = try String(contentsOf: file, encoding: .utf8).split(separator: "\n").map(String.init)
        lines[3] = lines[3].replacingOccurrences(of: "\"seq\":3", with: "\"seq\":4")
        let damaged = directory.appending(path: "damaged.ndjson")
        try (lines.joined(separator: "\n") + "\n").write(to: damaged, atomically: true, encoding: .utf8)
        let empty = try await TestCluster.shared.database()
        let refused = try await run(["audit", "replay", damaged.path, "--into", empty.ownerURL.connectionString], common: false)
        #expect(refused.status != 0)
        #expect(refused.output.contains("nothing was imported"), "\(refused.output)")
        #expect(try await scalar(empty.superuserURL, "SELECT count(*)::int FROM events", as: Int.self) == 0)
        #expect(try await scalar(empty.superuserURL, "SELECT count(*)::int FROM tenants", as: Int.self) == 0)
    }
}
