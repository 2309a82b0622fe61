import API
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import NIOPosix
import Operations
import Testing

/// Sends `bytes` on a connection of its own and returns everything the server writes until it
/// closes the connection (send `Connection: close` in a request that should be answered).
func rawExchange(port: Int, _ bytes: String) async throws -> String {
    let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        .connect(host: "127.0.0.1", port: port) { channel in
            channel.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel) }
        }
    return try await channel.executeThenClose { inbound, outbound in
        try await outbound.write(ByteBuffer(string: bytes))
        var received = ByteBuffer()
        for try await var chunk in inbound { received.writeBuffer(&chunk) }
        return String(buffer: received)
    }
}

/// A raw HTTP/1.1 answer split into its status line, headers (lowercased names) and body.
struct RawResponse {
    let status: Int
    let headers: [String: String]
    let body: String

    init(_ text: String) throws {
        let parts = text.components(separatedBy: "\r\n\r\n")
        let lines = try #require(parts.first).components(separatedBy: "\r\n")
        status = Int(try #require(lines.first).split(separator: " ").dropFirst().first ?? "") ?? 0
        var headers: [String: String] = [:]
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        self.headers = headers
        body = parts.dropFirst().joined(separator: "\r\n\r\n")
    }
}

@Suite struct HTTPEdgeTests {
    func problemType(_ response: SentResponse) -> String? {
        (try? JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any])?["type"] as? String
    }

    @Test func `two Host headers are 400 problem+json`() async throws {
        try await withApp(.live) { _, client in
            let port = try #require(client.port)
            let text = try await rawExchange(port: port,
                                             "GET /health/live HTTP/1.1\r\nHost: localhost\r\nHost: other.example\r\nConnection: close\r\n\r\n")
            let response = try RawResponse(text)
            #expect(response.status == 400, "\(text)")
            #expect(response.headers["content-type"] == "application/problem+json", "\(text)")
            #expect(response.body.contains("Host"), "\(text)")
            let single = try RawResponse(try await rawExchange(port: port, "GET /health/live HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"))
            #expect(single.status == 200)
        }
    }

    @Test func `a repeated X-Tenant-ID or Authorization header is 400`() async throws {
        try await withApp(.router) { app, client in
            let tenant = try await app.tenantClient(client, slug: "twice")
            var fields = headers(tenant.key, tenant: "twice")
            fields.append(HTTPField(name: HTTPField.Name("X-Tenant-ID")!, value: "other-shop"))
            let twoTenants = try await send(client, "/api/pets", .get, fields)
            #expect(twoTenants.status == .badRequest && twoTenants.headers[.contentType] == "application/problem+json")
            var keys = headers(tenant.key, tenant: "twice")
            keys.append(HTTPField(name: .authorization, value: "Bearer \(app.platformKey)"))
            #expect(try await send(client, "/api/pets", .get, keys).status == .badRequest)
        }
    }

    @Test func `a body without a JSON Content-Type is 415 and appends nothing`() async throws {
        try await withApp(.router) { app, client in
            let tenant = try await app.tenantClient(client, slug: "media")
            let before = try await app.eventCount("media")
            let body = ByteBuffer(string: #"{"name":"Rex","species":"dog"}"#)
            let bare = try await send(client, "/api/pets", .post, headers(tenant.key, tenant: "media"), body: body)
            #expect(bare.status == .unsupportedMediaType, "\(String(buffer: bare.body))")
            #expect(bare.headers[.contentType] == "application/problem+json")
            #expect(problemType(bare) == "https://petstore.dev/problems/unsupported-media-type")
            for type in ["text/plain", "application/jsonp", "application/json-seq", "application/x-www-form-urlencoded",
                         "application/json; charset=latin1", "application/merge-patch+json"] {
                let response = try await send(client, "/api/pets", .post, headers(tenant.key, tenant: "media").merging([.contentType: type]), body: body)
                #expect(response.status == .unsupportedMediaType, "\(type)")
            }
            #expect(try await app.eventCount("media") == before)
            for type in ["application/json; charset=utf-8", "Application/JSON;charset=\"UTF-8\"", "application/json"] {
                let response = try await send(client, "/api/pets", .post, headers(tenant.key, tenant: "media").merging([.contentType: type]), body: body)
                #expect(response.status == .created, "\(type): \(String(buffer: response.body))")
            }
            // A command that takes no body needs no Content-Type.
            let signed = try await send(client, "/api/admin/tenants/media/checkpoints", .post, headers(app.platformKey))
            #expect(signed.status == .created, "\(String(buffer: signed.body))")
            // An empty body without Content-Type is still a 400: the fields are missing.
            #expect(try await send(client, "/api/pets", .post, headers(tenant.key, tenant: "media")).status == .badRequest)
        }
    }

    @Test func `an unsupported method on an existing route is 405 with Allow from the route table`() async throws {
        try await withApp(.router) { app, client in
            let tenant = try await app.tenantClient(client, slug: "methods")
            let id = UUID().uuidString.lowercased()
            let cases: [(HTTPRequest.Method, String, String)] = [
                (.put, "/api/pets", "GET, POST"),
                (.post, "/api/pets/\(id)", "DELETE, GET, PATCH"),
                (.delete, "/api/events", "GET"),
                (.patch, "/api/config/theme", "DELETE, PUT"),
                (.delete, "/api/admin/analytics", "GET"),
                (.post, "/health/live", "GET"),
                (.post, "/openapi.json", "GET"),
            ]
            for (method, uri, allow) in cases {
                let response = try await send(client, uri, method, headers(tenant.key, tenant: "methods"))
                #expect(response.status == .methodNotAllowed, "\(method) \(uri): \(String(buffer: response.body))")
                #expect(response.headers[.allow] == allow, "\(method) \(uri)")
                #expect(response.headers[.contentType] == "application/problem+json")
                #expect(problemType(response) == "https://petstore.dev/problems/method-not-allowed")
            }
            // The same without a key: which methods a route has is no secret (it is in /openapi.json).
            #expect(try await send(client, "/api/pets", .put, [:]).status == .methodNotAllowed)
            #expect(try await send(client, "/api/no-such-thing", .put, headers(tenant.key, tenant: "methods")).status == .notFound)
            #expect(try await send(client, "/api/pets/\(id)/history/extra", .get, headers(tenant.key, tenant: "methods")).status == .notFound)
            // Every route in the table answers 405, not 404, to a method it lacks.
            let table = app.routes.all
            for path in Set(table.map(\.path)) {
                let methods = Set(table.filter { $0.path == path }.map(\.method))
                guard let missing = ([.get, .post, .put, .patch, .delete] as [HTTPRequest.Method]).first(where: { !methods.contains($0) }) else { continue }
                let uri = path.replacingOccurrences(of: #"\{[^}]+\}"#, with: "x", options: .regularExpression)
                let response = try await send(client, uri, missing, [:])
                #expect(response.status == .methodNotAllowed, "\(missing) \(uri)")
            }
        }
    }

    @Test func `a repeated query parameter is 400`() async throws {
        try await withApp(.router) { app, client in
            let tenant = try await app.tenantClient(client, slug: "repeats")
            for uri in ["/api/pets?limit=1&limit=1", "/api/pets?species=dog&species=cat", "/api/events?after=1&after=2",
                        "/api/pets/\(UUID().uuidString.lowercased())?as_of=2020-01-01T00:00:00Z&as_of=2021-01-01T00:00:00Z"] {
                let response = try await tenant.call(.get, uri)
                #expect(response.status == .badRequest, "\(uri): \(String(buffer: response.body))")
                #expect(response.headers[.contentType] == "application/problem+json")
                #expect(String(buffer: response.body).contains("must be given once"), "\(uri)")
            }
            #expect(try await send(client, "/api/admin/tenants?limit=1&limit=2", .get, headers(app.platformKey)).status == .badRequest)
        }
    }

    @Test func `a 400 for unknown parameters or fields lists ten of them and counts the rest`() async throws {
        try await withApp(.router) { app, client in
            let tenant = try await app.tenantClient(client, slug: "many-params")
            let query = (0..<10_000).map { "p\($0)=1" }.joined(separator: "&")
            let response = try await tenant.call(.get, "/api/pets?" + query)
            #expect(response.status == .badRequest)
            #expect(response.body.readableBytes < 2048, "\(response.body.readableBytes) bytes")
            #expect(String(buffer: response.body).contains("and 9990 more"))
            let errors = (try tenant.object(response)["errors"] as? [[String: Any]]) ?? []
            #expect(errors.count == 10)

            let members = (0..<5000).map { #""f\#($0)":1"# }.joined(separator: ",")
            let body = try await tenant.call(.post, "/api/pets", json: "{" + members + "}")
            #expect(body.status == .badRequest)
            #expect(body.body.readableBytes < 2048, "\(body.body.readableBytes) bytes")
            #expect(String(buffer: body.body).contains("and 4990 more"))
        }
    }

    @Test func `malformed HTTP is answered with problem+json before the connection closes`() async throws {
        try await withApp(.live) { _, client in
            let port = try #require(client.port)
            let badHeader = try RawResponse(try await rawExchange(port: port, "GET /health/live HTTP/1.1\r\nHost: localhost\r\nNo Colon Here\r\n\r\n"))
            #expect(badHeader.status == 400)
            #expect(badHeader.headers["content-type"] == "application/problem+json")
            #expect(badHeader.headers["connection"] == "close")
            let problem = try #require(try JSONSerialization.jsonObject(with: Data(badHeader.body.utf8)) as? [String: Any])
            #expect(problem["type"] as? String == "https://petstore.dev/problems/malformed-request")
            #expect(problem["status"] as? Int == 400)

            let badLine = try RawResponse(try await rawExchange(port: port, "GET /health/live HTTP/9.x\r\nHost: localhost\r\n\r\n"))
            #expect(badLine.status == 400 && badLine.headers["content-type"] == "application/problem+json")

            let huge = String(repeating: "a", count: 100 * 1024)
            let tooLarge = try RawResponse(try await rawExchange(port: port, "GET /health/live HTTP/1.1\r\nHost: localhost\r\nX-Big: \(huge)\r\n\r\n"))
            #expect(tooLarge.status == 431 && tooLarge.headers["content-type"] == "application/problem+json")
        }
    }
}
