import API
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Operations
import Testing

/// Input PostgreSQL cannot take (U+0000 in text or jsonb, times outside its calendar) is a 4xx
/// problem+json before it reaches a query, and nothing is appended.
@Suite struct InputEdgeTests {
    func expectProblem(_ response: SentResponse, _ status: HTTPResponse.Status, field: String? = nil, _ what: String,
                       sourceLocation: SourceLocation = #_sourceLocation) throws {
        #expect(response.status == status, "\(what): \(String(buffer: response.body))", sourceLocation: sourceLocation)
        #expect(response.headers[.contentType] == "application/problem+json", "\(what)", sourceLocation: sourceLocation)
        let body = try #require(try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any], sourceLocation: sourceLocation)
        #expect(body["status"] as? Int == status.code, "\(what)", sourceLocation: sourceLocation)
        if let field {
            let fields = (body["errors"] as? [[String: Any]] ?? []).compactMap { $0["field"] as? String }
            #expect(fields.contains(field), "\(what): \(fields)", sourceLocation: sourceLocation)
        }
    }

    @Test func `U+0000 anywhere in a config value or its keys is 422 and appends nothing`() async throws {
        try await withApp(.router) { app, client in
            let tenant = try await app.tenantClient(client, slug: "nul-config")
            let before = try await app.eventCount("nul-config")
            for body in [#"{"value":"a\u0000b"}"#, #"{"value":{"a\u0000":1}}"#, #"{"value":[{"x":{"y\u0000z":true}}]}"#,
                         #"{"value":{"outer":["ok","\u0000"]}}"#] {
                try expectProblem(try await tenant.call(.put, "/api/config/k", json: body), .unprocessableContent, field: "value", body)
            }
            for body in [#"{"name":"Re\u0000x","species":"dog"}"#, #"{"name":"Rex","species":"dog","breed":"\u0000"}"#] {
                try expectProblem(try await tenant.call(.post, "/api/pets", json: body), .unprocessableContent, body)
            }
            try expectProblem(try await tenant.call(.post, "/api/keys", json: #"{"email":"a\u0000@b.test","role":"member"}"#),
                              .unprocessableContent, field: "email", "email")
            #expect(try await app.eventCount("nul-config") == before)
            // A value with other control characters is a tenant's own business and is kept.
            #expect(try await tenant.call(.put, "/api/config/k", json: #"{"value":{"line\n":"tab\tend\u0001"}}"#).status == .ok)
        }
    }

    @Test func `a bad admin email at onboarding is 422 and no tenant is created`() async throws {
        try await withApp(.router) { app, client in
            for email in [#"boss\u0000@nul.test"#, "not-an-email"] {
                let body = #"{"slug":"half-made","name":"Half","plan":"free","admin_email":"\#(email)"}"#
                let response = try await send(client, "/api/admin/tenants", .post,
                                              headers(app.platformKey).merging([.contentType: "application/json"]), body: ByteBuffer(string: body))
                try expectProblem(response, .unprocessableContent, field: "admin_email", email)
                #expect(try await app.catalog.tenant(slug: "half-made") == nil, "\(email): the tenant was not created")
            }
            let name = #"{"slug":"nul-name","name":"N\u0000","plan":"free"}"#
            let response = try await send(client, "/api/admin/tenants", .post,
                                          headers(app.platformKey).merging([.contentType: "application/json"]), body: ByteBuffer(string: name))
            try expectProblem(response, .unprocessableContent, field: "name", "tenant name")
            #expect(try await app.catalog.tenant(slug: "nul-name") == nil)
        }
    }

    @Test func `control characters in a query parameter are 400`() async throws {
        try await withApp(.router) { app, client in
            let tenant = try await app.tenantClient(client, slug: "nul-query")
            try expectProblem(try await tenant.call(.get, "/api/pets?species=do%00g"), .badRequest, field: "species", "species")
            try expectProblem(try await tenant.call(.get, "/api/pets?species=%0A"), .badRequest, field: "species", "species newline")
            try expectProblem(try await tenant.call(.get, "/api/events?type=A%00"), .badRequest, field: "type", "type")
            let platform = headers(app.platformKey)
            for uri in ["/api/admin/analytics?tenant=nul%00query", "/api/admin/security-events?tenant=%00", "/api/admin/security-events?kind=%00"] {
                try expectProblem(try await send(client, uri, .get, platform), .badRequest, uri)
            }
        }
    }

    @Test func `a cursor that decodes to control characters is 400`() async throws {
        try await withApp(.router) { app, client in
            let forged = Data("v1:a\u{0}b".utf8).base64EncodedString()
                .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
            try expectProblem(try await send(client, "/api/admin/tenants?cursor=\(forged)", .get, headers(app.platformKey)), .badRequest, "tenants cursor")
            let page = try await send(client, "/api/admin/tenants?limit=1", .get, headers(app.platformKey))
            #expect(page.status == .ok, "a cursor of our own still works")
        }
    }

    @Test(arguments: ["0001-01-01T00:00:00Z", "0000-01-01T00:00:00Z", "1969-12-31T23:59:59Z", "0001-01-01T00:00:00+01:00"])
    func `a time outside 1970 to 9999 is 400 on every time parameter`(time: String) async throws {
        try await withApp(.router) { app, client in
            let tenant = try await app.tenantClient(client, slug: "old-times")
            let id = try await tenant.register("Rex")
            let before = try await app.eventCount("old-times")
            let encoded = time.replacingOccurrences(of: "+", with: "%2B")
            for uri in ["/api/pets/\(id)?as_of=\(encoded)", "/api/pets/\(id)/history?as_of=\(encoded)",
                        "/api/events?from=\(encoded)", "/api/events?to=\(encoded)"] {
                try expectProblem(try await tenant.call(.get, uri), .badRequest, uri)
            }
            #expect(try await app.eventCount("old-times") == before)
            // The epoch itself is a time the log can be asked about: the pet did not exist yet.
            #expect(try await tenant.call(.get, "/api/pets/\(id)?as_of=1970-01-01T00:00:00Z").status == .notFound)
        }
    }

    @Test func `an analytics day before 1970 or in year 0000 is 400`() async throws {
        try await withApp(.router) { app, client in
            for (query, field) in [("from=0000-01-01&to=0000-01-02", "to"), ("from=1969-12-31&to=1970-01-01", "from"),
                                   ("from=0001-01-01&to=0001-01-31", "to"), ("from=2026-01-01&to=0000-02-29", "to")] {
                let response = try await send(client, "/api/admin/analytics?\(query)", .get, headers(app.platformKey))
                try expectProblem(response, .badRequest, field: field, query)
            }
        }
    }
}
