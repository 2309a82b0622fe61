import API
import EventLog
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Operations
import Tenancy
import Testing

@Suite struct OpenAPITests {
    /// One operation of the served document.
    struct Operation: CustomStringConvertible {
        let method: String
        let path: String
        let json: JSONValue

        var description: String { "\(method) \(path)" }
        var parameters: [JSONValue] { if case .array(let values)? = json["parameters"] { values } else { [] } }
        var isTenantScoped: Bool {
            parameters.contains { $0["in"]?.stringValue == "header" && $0["name"]?.stringValue == "X-Tenant-ID" }
        }
        var needsKey: Bool { if case .array(let values)? = json["security"] { !values.isEmpty } else { false } }
        var roles: [String] { if case .array(let values)? = json["x-roles"] { values.compactMap(\.stringValue) } else { [] } }
    }

    /// `GET /openapi.json` with no key and no tenant, parsed strictly.
    func document(_ client: some TestClientProtocol) async throws -> JSONValue {
        try await client.execute(uri: "/openapi.json", method: .get) { response in
            #expect(response.status == .ok)
            #expect(response.headers[.contentType] == "application/json")
            return try CanonicalJSON.parse(response.body.readableBytesView)
        }
    }

    func operations(_ document: JSONValue) throws -> [Operation] {
        guard case .object(let paths)? = document["paths"] else { throw Failure("the document has no paths object") }
        return try paths.flatMap { path in
            guard case .object(let methods) = path.value else { throw Failure("\(path.key) is not a Path Item object") }
            return methods.map { Operation(method: $0.key.uppercased(), path: path.key, json: $0.value) }
        }
    }

    struct Failure: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    @Test func `every registered route is documented with its method, templated path, roles and tenant header`() async throws {
        try await withApp(.router) { app, client in
            let documented = try operations(try await document(client))
            let routes = Set(app.routes.all)
            #expect(routes.contains { $0.method == .get && $0.path == "/openapi.json" }, "the document's own route is in the table")
            #expect(routes.contains { $0.tenantScoped } && routes.contains { $0.platform })
            for route in routes {
                let operation = documented.first { $0.method == route.method.rawValue && $0.path == route.path }
                guard let operation else {
                    Issue.record("\(route.method) \(route.path) is registered but not in the OpenAPI document")
                    continue
                }
                #expect(operation.roles == (route.platform ? [Principal.platformAdminName] : route.roles.map(\.rawValue).sorted()), "\(operation): x-roles differ from the registered roles")
                #expect(operation.isTenantScoped == route.tenantScoped, "\(operation): X-Tenant-ID is documented iff the route needs a tenant")
                #expect(operation.needsKey == (route.platform || !route.roles.isEmpty), "\(operation): bearer security iff the route needs a role")
            }
        }
    }

    @Test func `every documented operation is answered by its route, not by the not-found fallback`() async throws {
        try await withApp(.router) { _, client in
            let documented = try operations(try await document(client))
            #expect(documented.count > 3)
            for operation in documented {
                var uri = operation.path
                while let open = uri.firstIndex(of: "{"), let close = uri[open...].firstIndex(of: "}") {
                    uri.replaceSubrange(open...close, with: UUID().uuidString.lowercased())
                }
                let method = try #require(HTTPRequest.Method(operation.method), "\(operation): not an HTTP method")
                // No key and no tenant: only a registered route gets past the router to its middleware,
                // which answers 400 (tenant routes) or 401 (platform routes); the rest answer for themselves.
                try await client.execute(uri: uri, method: method) { response in
                    let type = (try? CanonicalJSON.parse(response.body.readableBytesView))?["type"]?.stringValue ?? ""
                    #expect(!type.hasSuffix("/not-found") && !type.hasSuffix("/method-not-allowed"),
                            "\(operation) is documented but the server has no such route")
                    if operation.isTenantScoped {
                        #expect(response.status == .badRequest && type.hasSuffix("/bad-request"), "\(operation): \(response.status) \(type)")
                    } else if operation.needsKey {
                        #expect(response.status == .unauthorized && type.hasSuffix("/unauthorized"), "\(operation): \(response.status) \(type)")
                    } else {
                        #expect([.ok, .serviceUnavailable].contains(response.status), "\(operation): \(response.status) \(type)")
                    }
                }
            }
            // The probe tells a missing route from a present one: an unknown path is the router's
            // 404, and a known path with a method it does not have is 405.
            try await client.execute(uri: "/api/no-such-route", method: .get) { response in
                #expect(response.status == .notFound)
                #expect(String(buffer: response.body).contains("/not-found\""))
            }
            for (method, uri) in [(HTTPRequest.Method.put, "/api/pets"), (.post, "/openapi.json")] {
                try await client.execute(uri: uri, method: method) { response in
                    #expect(response.status == .methodNotAllowed, "\(method) \(uri)")
                    #expect(String(buffer: response.body).contains("/method-not-allowed\""), "\(method) \(uri)")
                }
            }
        }
    }

    @Test func `the document is OpenAPI 3.1.0, every reference resolves, and every operation has a unique id and its responses`() async throws {
        try await withApp(.router) { _, client in
            let document = try await document(client)
            #expect(document["openapi"] == .string("3.1.0"))
            #expect(document["info"]?["title"] == .string("Petstore API"))
            #expect(document["info"]?["version"] == .string("1.0.0"))
            #expect(document["components"]?["securitySchemes"]?["bearer"]?["type"] == .string("http"))
            #expect(document["components"]?["securitySchemes"]?["bearer"]?["scheme"] == .string("bearer"))
            if case .array(let servers)? = document["servers"] {
                #expect(servers.count == 3, "subdomain, path and header forms")
                #expect(servers.allSatisfy { $0["description"]?.stringValue?.isEmpty == false })
            } else {
                Issue.record("the document has no servers")
            }

            let references = Self.references(in: document)
            #expect(references.count > 20)
            for reference in Set(references) {
                #expect(Self.resolve(reference, in: document) != nil, "\(reference) does not resolve")
                #expect(reference.hasPrefix("#/components/"), "\(reference) points outside components")
            }
            #expect(Self.resolve("#/components/schemas/NoSuchSchema", in: document) == nil, "the resolver can fail")

            var ids: Set<String> = []
            for operation in try operations(document) {
                let id = operation.json["operationId"]?.stringValue ?? ""
                #expect(!id.isEmpty, "\(operation) has no operationId")
                #expect(ids.insert(id).inserted, "\(operation): operationId \(id) is used twice")

                guard case .object(let responses)? = operation.json["responses"], !responses.isEmpty else {
                    Issue.record("\(operation) has no responses")
                    continue
                }
                #expect(responses.contains { $0.key.hasPrefix("2") }, "\(operation) has no success response")
                for response in responses where response.key.hasPrefix("4") || response.key.hasPrefix("5") {
                    #expect(response.value["content"]?["application/problem+json"] != nil, "\(operation) \(response.key) is not problem+json")
                }
                let expected: [String] = operation.isTenantScoped ? ["400", "401", "403", "404"] : operation.needsKey ? ["401", "403"] : []
                for status in expected {
                    #expect(responses.contains { $0.key == status }, "\(operation) does not document its middleware's \(status)")
                }

                let templated = Set(operation.path.split(separator: "{").dropFirst().compactMap { $0.split(separator: "}").first.map(String.init) })
                let declared = Set(operation.parameters.filter { $0["in"] == .string("path") && $0["required"] == .bool(true) }
                    .compactMap { $0["name"]?.stringValue })
                #expect(templated == declared, "\(operation): path parameters \(templated) declared as \(declared)")
            }
        }
    }

    /// Every `$ref` value anywhere in `value`.
    static func references(in value: JSONValue) -> [String] {
        switch value {
        case .array(let values): values.flatMap { references(in: $0) }
        case .object(let members):
            members.flatMap { member in
                member.key == "$ref" ? [member.value.stringValue ?? "<not a string>"] : references(in: member.value)
            }
        default: []
        }
    }

    /// The value a local JSON pointer reference (`#/a/b`) names, or nil.
    static func resolve(_ reference: String, in document: JSONValue) -> JSONValue? {
        guard reference.hasPrefix("#/") else { return nil }
        var current: JSONValue? = document
        for token in reference.dropFirst(2).split(separator: "/", omittingEmptySubsequences: false) {
            let key = token.replacingOccurrences(of: "~1", with: "/").replacingOccurrences(of: "~0", with: "~")
            current = current?[key]
        }
        return current
    }
}
