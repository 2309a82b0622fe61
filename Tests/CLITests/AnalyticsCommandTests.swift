import Database
import Foundation
import PetstoreTesting
import Testing

/// `petstore analytics export`: the analytics as files, with no server running.
@Suite(.serialized) struct AnalyticsCommandTests {
    let audit = AuditCommandTests()

    func read(_ name: String) throws -> [String] {
        // CSV ends its lines in CRLF, NDJSON in LF; Swift takes "\r\n" for one character.
        try String(contentsOf: audit.directory.appending(path: name), encoding: .utf8)
            .replacingOccurrences(of: "\r\n", with: "\n").split(separator: "\n").map(String.init)
    }

    @Test func `exports count what the logs hold, as CSV and NDJSON`() async throws {
        try FileManager.default.createDirectory(at: audit.directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: audit.directory) }
        let database = try await TestCluster.shared.database()
        for slug in ["csv-one", "csv-two"] {
            #expect(try await audit.run(["tenant", "create", "--slug", slug, "--name", "Shop, \"\(slug)\""], on: database).status == 0)
        }
        let csv = audit.directory.appending(path: "tenants.csv")
        let written = try await audit.run(["analytics", "export", "--format", "csv", "--out", csv.path], on: database)
        #expect(written.status == 0, "\(written.output)")
        let lines = try read("tenants.csv")
        #expect(lines.first == "tenant_id,slug,name,plan,status,active_pets,removed_pets,commands,events,rate_limited_requests,cross_tenant_attempts,from,to")
        #expect(lines.count == 3)

        let counts = try await rows(database.superuserURL, """
            SELECT t.slug, count(*), count(DISTINCT e.recorded_at),
                   (SELECT count(*) FROM events p WHERE p.tenant_id = t.id AND p.event_type = 'PetRegistered')
              FROM tenants t JOIN events e ON e.tenant_id = t.id GROUP BY t.id, t.slug ORDER BY t.slug
            """, as: (String, Int64, Int64, Int64).self)
        #expect(counts.count == 2)
        for (line, (slug, events, commands, pets)) in zip(lines.dropFirst(), counts) {
            // The name holds a comma and quotes: quoted as RFC 4180 says, so the columns still line up.
            #expect(line.contains(",\(slug),\"Shop, \"\"\(slug)\"\"\",free,active,"), "\(line)")
            let tail = line.split(separator: ",").suffix(8).map(String.init)
            #expect(tail.prefix(6) == ["\(pets)", "0", "\(commands)", "\(events)", "0", "0"], "\(slug): \(line)")
        }

        let ndjson = audit.directory.appending(path: "daily.ndjson")
        #expect(try await audit.run(["analytics", "export", "--format", "ndjson", "--table", "daily", "--tenant", "csv-two", "--out", ndjson.path],
                              on: database).status == 0)
        let days = try read("daily.ndjson")
        #expect(days.count == 1)
        let day = try #require(try JSONSerialization.jsonObject(with: Data(days[0].utf8)) as? [String: Any])
        #expect(day["slug"] as? String == "csv-two")
        #expect((day["events"] as? NSNumber)?.int64Value == counts[1].1)
        #expect((day["commands"] as? NSNumber)?.int64Value == counts[1].2)
    }

    @Test func `bad export arguments fail with a reason and write nothing`() async throws {
        try FileManager.default.createDirectory(at: audit.directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: audit.directory) }
        let database = try await TestCluster.shared.database()
        let out = audit.directory.appending(path: "never.csv")
        let cases: [([String], String)] = [
            (["--format", "xlsx"], "--format must be one of csv, ndjson"),
            (["--format", "csv", "--table", "everything"], "--table must be one of"),
            (["--format", "csv", "--from", "2026-11-29", "--to", "2026-11-01"], "reversed"),
            (["--format", "csv", "--from", "2026-13-01"], "calendar day"),
            (["--format", "csv", "--tenant", "no-such-shop"], "No tenant has the slug \"no-such-shop\""),
        ]
        for (arguments, message) in cases {
            let result = try await audit.run(["analytics", "export"] + arguments + ["--out", out.path], on: database)
            #expect(result.status != 0, "\(arguments)")
            #expect(result.output.contains(message), "\(arguments): \(result.output)")
            #expect(!FileManager.default.fileExists(atPath: out.path))
        }
    }
}
