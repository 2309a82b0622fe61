import API
import Domain
import EventLog
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Operations
import PetstoreTesting
import Testing

/// The OpenAPI document against what the server really sends and accepts: every operation's
/// answers are held against the schema declared for their status and content type, and the
/// request schemas against the Domain's validation.
@Suite struct OpenAPIConformanceTests {
    /// The answers seen, each checked against the document as it arrives.
    struct Recorder {
        /// "METHOD /template status" of every answer checked.
        private(set) var operations: Set<String> = []
        let check: SchemaCheck

        init(document: JSONValue) { check = SchemaCheck(document: document) }

        /// Checks `response` as the answer of `method template` and returns it.
        @discardableResult
        mutating func conforms(_ response: SentResponse, _ method: HTTPRequest.Method, _ template: String,
                      sourceLocation: SourceLocation = #_sourceLocation) throws -> SentResponse {
            let operation = "\(method.rawValue) \(template)"
            let status = String(response.status.code)
            guard let declared = check.document["paths"]?[template]?[method.rawValue.lowercased()] else {
                Issue.record("\(operation) is not in the document", sourceLocation: sourceLocation)
                return response
            }
            guard let answer = declared["responses"]?[status] else {
                Issue.record("\(operation) answered \(status), which the document does not declare", sourceLocation: sourceLocation)
                return response
            }
            operations.insert("\(operation) \(status)")
            let type = response.headers[.contentType].map { String($0.split(separator: ";")[0]).trimmingCharacters(in: .whitespaces) }
            guard case .object(let contents)? = answer["content"] else {
                #expect(response.body.readableBytes == 0, "\(operation) \(status) declares no body but sent one", sourceLocation: sourceLocation)
                return response
            }
            guard let type, let content = contents.first(where: { $0.key == type })?.value else {
                Issue.record("\(operation) \(status) sent \(type ?? "no content type"); declared: \(contents.map(\.key))", sourceLocation: sourceLocation)
                return response
            }
            // JSON Schema describes JSON bodies only; Prometheus text and NDJSON are strings to it.
            guard let schema = content["schema"], type.hasSuffix("json") else { return response }
            let body = try CanonicalJSON.parse(response.body.readableBytesView)
            let problems = check.problems(body, schema)
            #expect(problems.isEmpty, "\(operation) \(status): \(problems)", sourceLocation: sourceLocation)
            return response
        }
    }

    func document(_ client: some TestClientProtocol) async throws -> JSONValue {
        try await client.execute(uri: "/openapi.json", method: .get) { try CanonicalJSON.parse($0.body.readableBytesView) }
    }

    @Test func `every operation's real answers match the schemas the document declares for them`() async throws {
        try await withApp(.router) { app, client in
            let document = try await document(client)
            var seen = Recorder(document: document)
            let platform = headers(app.platformKey)
            func platformCall(_ method: HTTPRequest.Method, _ uri: String, json: String? = nil) async throws -> SentResponse {
                var fields = platform
                if json != nil { fields[.contentType] = "application/json" }
                return try await send(client, uri, method, fields, body: json.map { ByteBuffer(string: $0) })
            }

            for uri in ["/health/live", "/health/ready", "/openapi.json", "/.well-known/petstore-signing-key"] {
                try seen.conforms(try await send(client, uri, .get, [:]), .get, uri)
            }
            try seen.conforms(try await platformCall(.get, "/metrics"), .get, "/metrics")

            // A tenant, its admin, an auditor, and a stranger whose key other tenants refuse.
            let admin = try await app.tenantClient(client, slug: "conform")
            let stranger = try await app.tenantClient(client, slug: "stranger")
            let issued = try seen.conforms(try await admin.call(.post, "/api/keys", json: #"{"email":" Auditor@Conform.test ","role":"auditor"}"#),
                                           .post, "/api/keys")
            let auditor = TenantClient(client: client, key: try #require(try admin.object(issued)["api_key"] as? String), slug: "conform")
            let member = try admin.object(try await admin.call(.post, "/api/keys", json: #"{"email":"member@conform.test","role":"member"}"#,
                                                               extra: [HTTPField.Name("Idempotency-Key")!: "member-key"]))
            let replay = try seen.conforms(try await admin.call(.post, "/api/keys", json: #"{"email":"member@conform.test","role":"member"}"#,
                                                                extra: [HTTPField.Name("Idempotency-Key")!: "member-key"]), .post, "/api/keys")
            #expect(replay.headers[HTTPField.Name("Idempotent-Replayed")!] == "true")
            let replayed = try admin.object(replay)
            #expect(replayed["api_key"] == nil, "the replay leaves the secret out")
            try seen.conforms(try await admin.call(.delete, "/api/keys/\(try #require(member["id"] as? String))"), .delete, "/api/keys/{id}")
            let users = try #require(try admin.object(try await admin.call(.get, "/api/users"))["items"] as? [[String: Any]])
            let memberUser = try #require(users.first { $0["email"] as? String == "member@conform.test" }?["id"] as? String)
            try seen.conforms(try await admin.call(.delete, "/api/users/\(memberUser)"), .delete, "/api/users/{id}")
            try seen.conforms(try await admin.call(.delete, "/api/users/\(memberUser)?erase=true"), .delete, "/api/users/{id}")
            try seen.conforms(try await admin.call(.delete, "/api/users/\(memberUser)?erase=true"), .delete, "/api/users/{id}")
            try seen.conforms(try await admin.call(.post, "/api/keys", json: #"{"email":"a b@conform.test","role":"member"}"#), .post, "/api/keys")
            #expect(try await TenantClient(client: client, key: stranger.key, slug: "conform").call(.get, "/api/pets").status == .notFound)

            try seen.conforms(try await admin.call(.get, "/api/tenant"), .get, "/api/tenant")
            try seen.conforms(try await admin.call(.get, "/api/users"), .get, "/api/users")
            try seen.conforms(try await admin.call(.get, "/api/keys"), .get, "/api/keys")

            // Pets: with and without the optional fields, a page that continues and the last one.
            let created = try seen.conforms(try await admin.call(.post, "/api/pets", json: #"{"name":" Rex ","species":"dog","breed":"Beagle","microchip_id":"123456789"}"#),
                                            .post, "/api/pets")
            let rex = try #require(try admin.object(created)["id"] as? String)
            try seen.conforms(try await admin.call(.post, "/api/pets", json: #"{"name":"Tom","species":"cat","breed":"","microchip_id":" "}"#), .post, "/api/pets")
            try seen.conforms(try await admin.call(.post, "/api/pets", json: #"{"id":null,"name":"Tom","species":"cat","breed":null,"microchip_id":null}"#),
                              .post, "/api/pets")
            try seen.conforms(try await admin.call(.post, "/api/pets", json: #"{"name":"Tom","species":"cat","microchip_id":"12345678"}"#), .post, "/api/pets")
            try seen.conforms(try await admin.call(.post, "/api/pets", json: #"{"name":"Tom"}"#), .post, "/api/pets")
            try seen.conforms(try await admin.call(.get, "/api/pets?limit=1"), .get, "/api/pets")
            try seen.conforms(try await admin.call(.get, "/api/pets?species=dog"), .get, "/api/pets")
            try seen.conforms(try await admin.call(.get, "/api/pets?limit=0"), .get, "/api/pets")
            try seen.conforms(try await admin.call(.get, "/api/pets/\(rex)"), .get, "/api/pets/{id}")
            try seen.conforms(try await admin.call(.get, "/api/pets/\(rex)?as_of=2000-01-01T00:00:00Z"), .get, "/api/pets/{id}")
            try seen.conforms(try await admin.call(.patch, "/api/pets/\(rex)", json: #"{"breed":null,"microchip_id":"123456789012345"}"#),
                              .patch, "/api/pets/{id}")
            try seen.conforms(try await admin.call(.patch, "/api/pets/\(rex)", json: #"{"name":"Re\u0007x"}"#), .patch, "/api/pets/{id}")
            try seen.conforms(try await admin.call(.patch, "/api/pets/\(rex)", json: "{}", extra: [.ifMatch: "\"1\""]), .patch, "/api/pets/{id}")
            try seen.conforms(try await admin.call(.get, "/api/pets/\(rex)/history"), .get, "/api/pets/{id}/history")
            try seen.conforms(try await admin.call(.delete, "/api/pets/\(rex)"), .delete, "/api/pets/{id}")

            try seen.conforms(try await admin.call(.get, "/api/config"), .get, "/api/config")
            try seen.conforms(try await admin.call(.put, "/api/config/include_deleted_pets", json: #"{"value":true}"#), .put, "/api/config/{key}")
            try seen.conforms(try await admin.call(.put, "/api/config/include_deleted_pets", json: #"{"value":"yes"}"#), .put, "/api/config/{key}")
            try seen.conforms(try await admin.call(.delete, "/api/config/include_deleted_pets"), .delete, "/api/config/{key}")

            // The log: a page that continues (next_after a number) and the last (null); the chain.
            try seen.conforms(try await platformCall(.post, "/api/admin/tenants/conform/checkpoints"), .post, "/api/admin/tenants/{slug}/checkpoints")
            let first = try seen.conforms(try await auditor.call(.get, "/api/events?limit=1"), .get, "/api/events")
            #expect(try auditor.object(first)["next_after"] as? Int == 1)
            let last = try seen.conforms(try await auditor.call(.get, "/api/events?after=1&limit=1000"), .get, "/api/events")
            #expect(try auditor.object(last)["next_after"] is NSNull)
            let verified = try seen.conforms(try await auditor.call(.get, "/api/events/verify"), .get, "/api/events/verify")
            #expect(try auditor.object(verified)["ok"] as? Bool == true)
            try seen.conforms(try await auditor.call(.get, "/api/events/checkpoints"), .get, "/api/events/checkpoints")
            try seen.conforms(try await auditor.call(.get, "/api/events?after=-1"), .get, "/api/events")
            // The cross-tenant attempt reaches the security log within a flush.
            var attempts: [Any] = []
            for _ in 0..<100 where attempts.isEmpty {
                let page = try seen.conforms(try await auditor.call(.get, "/api/security-events"), .get, "/api/security-events")
                attempts = try auditor.object(page)["items"] as? [Any] ?? []
                if attempts.isEmpty { try await Task.sleep(for: .milliseconds(20)) }
            }
            #expect(!attempts.isEmpty, "the stranger's attempt is listed")
            try seen.conforms(try await auditor.call(.post, "/api/pets", json: #"{"name":"X","species":"dog"}"#), .post, "/api/pets")

            // The platform.
            try seen.conforms(try await platformCall(.post, "/api/admin/tenants", json: #"{"slug":"leaver","name":"Leaver","plan":"basic"}"#),
                              .post, "/api/admin/tenants")
            try seen.conforms(try await platformCall(.post, "/api/admin/tenants", json: #"{"slug":"Bad","name":"Bad","plan":"basic"}"#),
                              .post, "/api/admin/tenants")
            try seen.conforms(try await platformCall(.get, "/api/admin/tenants?limit=1"), .get, "/api/admin/tenants")
            try seen.conforms(try await platformCall(.get, "/api/admin/tenants"), .get, "/api/admin/tenants")
            try seen.conforms(try await platformCall(.get, "/api/admin/tenants/conform"), .get, "/api/admin/tenants/{slug}")
            try seen.conforms(try await platformCall(.patch, "/api/admin/tenants/conform", json: #"{"plan":"premium"}"#), .patch, "/api/admin/tenants/{slug}")
            let moved = try seen.conforms(try await platformCall(.post, "/api/admin/tenants/conform/move", json: #"{"to":"schema"}"#),
                                          .post, "/api/admin/tenants/{slug}/move")
            #expect(moved.status == .ok, "\(String(buffer: moved.body))")
            try seen.conforms(try await platformCall(.post, "/api/admin/tenants/conform/move", json: #"{"to":"schema"}"#),
                              .post, "/api/admin/tenants/{slug}/move")
            try seen.conforms(try await platformCall(.post, "/api/admin/tenants/conform/move", json: #"{"to":"database"}"#),
                              .post, "/api/admin/tenants/{slug}/move")
            try seen.conforms(try await platformCall(.delete, "/api/admin/tenants/leaver"), .delete, "/api/admin/tenants/{slug}")
            try seen.conforms(try await platformCall(.get, "/api/admin/tenants/nobody"), .get, "/api/admin/tenants/{slug}")
            try seen.conforms(try await platformCall(.get, "/api/admin/security-events"), .get, "/api/admin/security-events")
            try seen.conforms(try await platformCall(.get, "/api/admin/security-events?limit=1"), .get, "/api/admin/security-events")
            try seen.conforms(try await platformCall(.get, "/api/admin/analytics"), .get, "/api/admin/analytics")
            try seen.conforms(try await platformCall(.get, "/api/admin/analytics?tenant=conform"), .get, "/api/admin/analytics")
            try seen.conforms(try await platformCall(.get, "/api/admin/projections"), .get, "/api/admin/projections")
            try seen.conforms(try await send(client, "/api/admin/projections", .get, [:]), .get, "/api/admin/projections")
            let second = try await TestCluster.second.serverURL()
            try seen.conforms(try await platformCall(.post, "/api/admin/servers", json: #"{"name":"second","url":"\#(second.connectionString)"}"#),
                              .post, "/api/admin/servers")
            try seen.conforms(try await platformCall(.post, "/api/admin/servers", json: #"{"name":"second","url":"\#(second.connectionString)"}"#),
                              .post, "/api/admin/servers")
            try seen.conforms(try await platformCall(.post, "/api/admin/servers", json: #"{"name":"x","url":"postgres://a@127.0.0.1:1/x"}"#),
                              .post, "/api/admin/servers")
            try seen.conforms(try await platformCall(.get, "/api/admin/servers"), .get, "/api/admin/servers")
            try seen.conforms(try await platformCall(.delete, "/api/admin/servers/main"), .delete, "/api/admin/servers/{name}")
            try seen.conforms(try await platformCall(.delete, "/api/admin/servers/second"), .delete, "/api/admin/servers/{name}")

            // Every operation was seen succeeding: a route added later cannot skip this test.
            let succeeded: Set<String> = Set(seen.operations.filter { $0.hasSuffix(" 200") || $0.hasSuffix(" 201") || $0.hasSuffix(" 202") || $0.hasSuffix(" 204") }
                .map { String($0.dropLast(4)) })
            guard case .object(let paths)? = document["paths"] else { throw SchemaCheck.Failure("the document has no paths") }
            let documented: [String] = paths.flatMap { path -> [String] in
                guard case .object(let methods) = path.value else { return [] }
                return methods.map { "\($0.key.uppercased()) \(path.key)" }
            }
            #expect(documented.count > 20)
            for operation in documented {
                #expect(succeeded.contains(operation), "\(operation) was not seen succeeding")
            }
        }
    }

    /// What each text rule's schema and `Validation` make of the same inputs; lengths aside, which
    /// the server counts in Characters and JSON Schema in code points.
    static let samples: [String] = [
        "Rex", "  Rex  ", "\tRex\n", "Re\tx", "Re x", "", "   ", "\u{200B}Rex\u{3000}", "Rex\u{85}", "\u{85}", "\u{7F}", "Rex\u{7F}",
        "e\u{301}", "\u{A0}Rex\u{2028}", "Re\u{1F}x", "\u{FEFF}", "\u{1C}Rex", "Rex\u{1C}", "🐕", "Rex\u{200B}y",
    ]

    static let microchips: [String] = [
        "123456789", "123456789012345", " 123456789\t", "12345678", "1234567890123456", "12345678a", "", "  ", "١٢٣٤٥٦٧٨٩",
        "1234 56789", "\u{3000}123456789\u{200B}", "+123456789", "\n",
    ]

    static let emails: [String] = [
        "a@b", " A@B.c ", "a b@c", "a@b@c", "@b", "a@", "a\u{200B}@b", "a\u{A0}@b", "a\u{1F}@b", "\u{2028}a@b.c", "", " ", "ab",
        "\u{200B}a@b\u{200B}", "a\u{85}@b", "a@\u{3000}b",
    ]

    @Test func `request schemas accept exactly what the domain's validation accepts`() async throws {
        try await withApp(.router) { _, client in
            let document = try await document(client)
            let check = SchemaCheck(document: document)
            let schemas = try #require(document["components"]?["schemas"])
            func accepts(_ schema: JSONValue?, _ text: String) throws -> Bool {
                check.problems(.string(text), try #require(schema)).isEmpty
            }
            for text in Self.samples {
                var validation = Validation()
                _ = validation.petName(text)
                #expect(try accepts(schemas["PetCreate"]?["properties"]?["name"], text) == validation.errors.isEmpty, "name \(text.debugDescription)")
                #expect(try accepts(schemas["PetPatch"]?["properties"]?["species"], text) == validation.errors.isEmpty, "species \(text.debugDescription)")
                #expect(try accepts(schemas["TenantCreate"]?["properties"]?["name"], text) == validation.errors.isEmpty, "tenant \(text.debugDescription)")
                var optional = Validation()
                _ = optional.breed(text)
                #expect(try accepts(schemas["PetCreate"]?["properties"]?["breed"], text) == optional.errors.isEmpty, "breed \(text.debugDescription)")
            }
            for text in Self.microchips {
                var validation = Validation()
                _ = validation.microchipID(text)
                #expect(try accepts(schemas["PetCreate"]?["properties"]?["microchip_id"], text) == validation.errors.isEmpty, "microchip \(text.debugDescription)")
                #expect(try accepts(schemas["PetPatch"]?["properties"]?["microchip_id"], text) == validation.errors.isEmpty, "microchip \(text.debugDescription)")
            }
            for text in Self.emails {
                var validation = Validation()
                _ = validation.email(text)
                #expect(try accepts(schemas["KeyIssue"]?["properties"]?["email"], text) == validation.errors.isEmpty, "email \(text.debugDescription)")
                #expect(try accepts(schemas["TenantCreate"]?["properties"]?["admin_email"], text) == validation.errors.isEmpty, "email \(text.debugDescription)")
            }
            // The samples reach both sides of every rule.
            #expect(Set(Self.samples.map { var v = Validation(); _ = v.petName($0); return v.errors.isEmpty }) == [true, false])
            // null: "none" or "the default" where the server reads it so, refused where it refuses it.
            for (schema, member, accepted) in [("PetPatch", "microchip_id", true), ("PetPatch", "breed", true), ("PetPatch", "name", false),
                                               ("PetCreate", "microchip_id", true), ("PetCreate", "breed", true), ("PetCreate", "id", true),
                                               ("PetCreate", "name", false), ("TenantCreate", "placement", true),
                                               ("TenantCreate", "admin_email", true), ("TenantCreate", "plan", false),
                                               ("TenantPatch", "plan", false), ("TenantPatch", "status", false)] {
                let problems = check.problems(.null, try #require(schemas[schema]?["properties"]?[member], "\(schema).\(member)"))
                #expect(problems.isEmpty == accepted, "\(schema).\(member) null")
            }
        }
    }

    @Test func `a NUL in a tenant filter or a cursor is a 4xx, not a 500: PostgreSQL text cannot hold one`() async throws {
        try await withApp(.router) { app, client in
            _ = try await app.onboard(client, slug: "acme")
            let nulCursor = Data("v1:a\u{0}b".utf8).base64EncodedString()
            // A NUL in any query value is refused as a whole (400); anything else not slug-shaped is an unknown tenant (404).
            for (uri, status) in [("/api/admin/security-events?tenant=a%00b", HTTPResponse.Status.badRequest),
                                  ("/api/admin/analytics?tenant=a%00b", .badRequest),
                                  ("/api/admin/analytics?tenant=Not%20A%20Slug", .notFound),
                                  ("/api/admin/security-events?tenant=admin", .notFound),
                                  ("/api/admin/tenants?cursor=\(nulCursor)", .badRequest),
                                  ("/api/admin/analytics?tenant=acme", .ok)] {
                let response = try await send(client, uri, .get, headers(app.platformKey))
                #expect(response.status == status, "\(uri): \(String(buffer: response.body))")
            }
        }
    }

    @Test func `the schema check finds what it is asked to find`() {
        let document: JSONValue = .object([
            "components": .object(["schemas": .object(["Page": .object([
                "type": .string("object"), "required": .array([.string("next")]), "additionalProperties": .bool(false),
                "properties": .object(["next": .object(["type": .array([.string("integer"), .string("null")]), "minimum": .number(1)])]),
            ])])]),
        ])
        let check = SchemaCheck(document: document)
        let page: JSONValue = .object(["$ref": .string("#/components/schemas/Page")])
        #expect(check.problems(.object([.init("next", .null)]), page).isEmpty)
        #expect(check.problems(.object([.init("next", .number(3))]), page).isEmpty)
        #expect(!check.problems(.object([.init("next", .number(0))]), page).isEmpty)
        #expect(!check.problems(.object([.init("next", .number(1.5))]), page).isEmpty)
        #expect(!check.problems(.object([.init("next", .string("3"))]), page).isEmpty)
        #expect(!check.problems(.object([]), page).isEmpty)
        #expect(!check.problems(.object([.init("next", .null), .init("other", .null)]), page).isEmpty)
        #expect(!check.problems(.bool(true), .object(["type": .string("object")])).isEmpty, "a boolean is not an object")
        #expect(!check.problems(.string("x"), .object(["oneOf": .array([])])).isEmpty, "an unknown keyword is a problem")
        #expect(!check.problems(.string("12345678"), .object(["pattern": .string("^[0-9]{9,15}$")])).isEmpty)
    }
}
