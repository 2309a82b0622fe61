import API
import Database
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import PetstoreTesting
import PostgresNIO
import Testing

/// `/api/admin/servers` and the registry behind `petstore server`.
@Suite struct ServerRegistryTests {
    func call(_ app: TestApp, _ client: some TestClientProtocol, _ method: HTTPRequest.Method, _ uri: String,
              json: String? = nil) async throws -> (status: HTTPResponse.Status, body: String) {
        var fields = headers(app.platformKey)
        if json != nil { fields[.contentType] = "application/json" }
        let response = try await send(client, uri, method, fields, body: json.map { ByteBuffer(string: $0) })
        return (response.status, String(buffer: response.body))
    }

    @Test func `a second server is registered by name, listed without its credentials, and forgotten`() async throws {
        let second = try await TestCluster.second.serverURL()
        let secret = try #require(second.password)
        try await withApp(.router) { app, client in
            let initial = try await call(app, client, .get, "/api/admin/servers")
            #expect(initial.status == .ok && initial.body.contains(#""name":"main""#) && initial.body.contains("DATABASE_URL"))

            let added = try await call(app, client, .post, "/api/admin/servers",
                                       json: #"{"name":"second","url":"\#(second.connectionString)"}"#)
            #expect(added.status == .created, "\(added.body)")
            #expect(added.body.contains(#""display":"\#(second.host):\#(second.port)/postgres""#))
            let listed = try await call(app, client, .get, "/api/admin/servers")
            #expect(listed.body.contains(#""name":"second""#))
            for body in [added.body, listed.body] {
                #expect(!body.contains(secret) && !body.contains(second.username), "a listing shows no login: \(body)")
            }
            // The serving role cannot read the URL back, even with SQL of its own.
            await #expect(throws: PSQLError.self) {
                _ = try await scalar(app.database.appURL, "SELECT url FROM servers WHERE name = 'second'", as: String.self)
            }
            #expect(try await scalar(app.database.ownerURL, "SELECT url FROM servers WHERE name = 'second'", as: String.self) == second.connectionString)

            #expect(try await call(app, client, .post, "/api/admin/servers", json: #"{"name":"second","url":"\#(second.connectionString)"}"#).status == .conflict)
            #expect(try await call(app, client, .delete, "/api/admin/servers/main").status == .conflict)
            #expect(try await call(app, client, .delete, "/api/admin/servers/nowhere").status == .notFound)

            // Refused while a tenant is placed there.
            _ = try await app.onboard(client, slug: "placed-far")
            try await app.database.superuserURL.withConnection(logger: TestCluster.logger) { connection in
                try await connection.query("UPDATE tenants SET server = 'second' WHERE slug = 'placed-far'", logger: TestCluster.logger).consume()
            }
            let refused = try await call(app, client, .delete, "/api/admin/servers/second")
            #expect(refused.status == .conflict && refused.body.contains("1 tenant(s)"), "\(refused.body)")
            try await app.database.superuserURL.withConnection(logger: TestCluster.logger) { connection in
                try await connection.query("UPDATE tenants SET server = 'main' WHERE slug = 'placed-far'", logger: TestCluster.logger).consume()
            }
            #expect(try await call(app, client, .delete, "/api/admin/servers/second").status == .noContent)
            #expect(!(try await call(app, client, .get, "/api/admin/servers").body.contains(#""name":"second""#)))
        }
    }

    @Test func `a bad name, a bad URL and a server that cannot be reached are refused, naming the field, without the password`() async throws {
        try await withApp(.router) { app, client in
            let badName = try await call(app, client, .post, "/api/admin/servers", json: #"{"name":"Not OK","url":"postgres://u:p@localhost/db"}"#)
            #expect(badName.status == .unprocessableContent && badName.body.contains(#""field":"name""#), "\(badName.body)")
            let badURL = try await call(app, client, .post, "/api/admin/servers", json: #"{"name":"ok","url":"mysql://u:p@localhost/db"}"#)
            #expect(badURL.status == .unprocessableContent && badURL.body.contains(#""field":"url""#), "\(badURL.body)")
            // Port 1 on loopback: nothing listens there.
            let unreachable = try await call(app, client, .post, "/api/admin/servers",
                                             json: #"{"name":"far-away","url":"postgres://someone:hunter2secret@127.0.0.1:1/db"}"#)
            #expect(unreachable.status == .unprocessableContent && unreachable.body.contains("could not be reached"), "\(unreachable.body)")
            #expect(!unreachable.body.contains("hunter2secret") && !unreachable.body.contains("someone"))
            let missing = try await call(app, client, .post, "/api/admin/servers", json: #"{"name":"ok"}"#)
            #expect(missing.status == .badRequest || missing.status == .unprocessableContent, "\(missing.body)")
            #expect(!(try await call(app, client, .get, "/api/admin/servers").body.contains("far-away")))
        }
    }
}
