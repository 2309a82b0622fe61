import API
@testable import Operations
import Database
import EventLog
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import PetstoreTesting
import PostgresNIO
import Tenancy
import Testing

@Suite struct WallTests {
    /// Every tenant route, with its parameters filled with ids that exist nowhere.
    func tenantRoutes(_ app: TestApp) -> [(HTTPRequest.Method, String)] {
        app.routes.all.filter(\.tenantScoped).map { entry in
            var path = entry.path
            while let open = path.firstIndex(of: "{"), let close = path[open...].firstIndex(of: "}") {
                path.replaceSubrange(open...close, with: UUID().uuidString.lowercased())
            }
            return (entry.method, path)
        }
    }

    @Test(arguments: Placements.all) func `a key of tenant A against tenant B is the same 404 as a missing tenant, by every route and strategy, and audited once per route`(placement: String) async throws {
        try await withApp(placement: placement) { app, client in
            let keyA = try await app.onboard(client, slug: "tenant-a")
            _ = try await app.onboard(client, slug: "tenant-b")
            let routes = tenantRoutes(app)
            #expect(routes.count >= 5, "the matrix covers every registered tenant route")
            let body = ByteBuffer(string: #"{"email":"x@example.com","role":"member"}"#)
            var reference: Comparable404?
            for (method, path) in routes {
                // A tenant that does not exist at all: the reference 404.
                let missing = try await client.execute(uri: path, method: method, headers: headers(keyA, tenant: "no-such-tenant"), body: body) {
                    Comparable404($0)
                }
                #expect(missing.status == 404)
                if let reference { #expect(missing == reference) } else { reference = missing }
                let strategies: [(String, HTTPFields)] = [
                    ("/tenant-b" + path, headers(keyA)),
                    (path, headers(keyA, tenant: "tenant-b")),
                    (path, headers(keyA, host: "tenant-b.petstore.localhost")),
                ]
                for (uri, fields) in strategies {
                    let attempt = Comparable404(try await send(client, uri, method, fields, body: body))
                    #expect(attempt == missing, "\(method) \(uri) \(fields)")
                }
            }
            // Returns once every attempt is written, including a batch the periodic flush is writing now.
            await app.dependencies.securityLog.flush()
            #expect(app.dependencies.securityLog.pendingAttempts == 0)
            let events = try await app.events(of: "CrossTenantAccessAttempted", tenant: "tenant-b")
            // One event per (method, route) and minute, repeats counted in it; a run that crosses
            // a minute boundary may split a route's attempts over two.
            let audited = Set(events.map { "\(String(describing: $0.data["method"])) \(String(describing: $0.data["route"]))" })
            #expect(audited.count == routes.count, "every (method, route) is audited")
            #expect(events.count >= routes.count && events.count <= routes.count * 2, "\(events.count) events for \(routes.count) routes")
            let attempts = try await scalar(app.database.superuserURL,
                "SELECT sum(attempts) FROM security_events WHERE kind = 'cross_tenant'", as: Int64.self)
            #expect(attempts == Int64(routes.count * 3))
            let first = try #require(events.first)
            #expect(first.data["actor_key"] != nil && first.data["method"] != nil && first.data["route"] != nil)
            #expect(first.data["client_address"] != nil && first.data["request_id"] != nil && first.data["at"] != nil)
            #expect(try await app.events(of: "CrossTenantAccessAttempted", tenant: "tenant-a").isEmpty)
            let unknown = try await scalar(app.database.superuserURL,
                "SELECT sum(attempts) FROM security_events WHERE kind = 'unknown_tenant'", as: Int64.self)
            #expect(unknown == Int64(routes.count))
        }
    }

    @Test(arguments: Placements.all) func `a missing, malformed, unknown or revoked key is 401 with WWW-Authenticate, whether or not the tenant exists`(placement: String) async throws {
        try await withApp(placement: placement) { app, client in
            let key = try await app.onboard(client, slug: "locked")
            let forged = APIKey.generate(.tenant).value
            for tenant in ["locked", "no-such-tenant"] {
                for authorization in [nil, "Bearer", "Basic abc", "Bearer short", "Bearer \(forged)", "Bearer \(String(repeating: "k", count: 10_000))"] {
                    var fields = headers(nil, tenant: tenant)
                    if let authorization { fields[.authorization] = authorization }
                    try await client.execute(uri: "/api/tenant", method: .get, headers: fields) { response in
                        #expect(response.status == .unauthorized, "\(tenant) \(authorization?.prefix(20) ?? "none")")
                        #expect(response.headers[.wwwAuthenticate]?.hasPrefix("Bearer") == true)
                        #expect(response.headers[.contentType] == "application/problem+json")
                    }
                }
            }
            // Revoke the admin's key with itself, then it no longer works. (Another admin key first:
            // the last one cannot be revoked.)
            let keys = try await client.execute(uri: "/api/keys", method: .get, headers: headers(key, tenant: "locked")) {
                try JSONSerialization.jsonObject(with: Data(buffer: $0.body)) as? [String: [[String: Any]]]
            }
            let id = try #require(keys?["items"]?.first?["id"] as? String)
            try await client.execute(uri: "/api/keys", method: .post, headers: headers(key, tenant: "locked").merging([.contentType: "application/json"]),
                                     body: ByteBuffer(string: #"{"email":"deputy@locked.test","role":"admin"}"#)) {
                #expect($0.status == .created)
            }
            try await client.execute(uri: "/api/keys/\(id)", method: .delete, headers: headers(key, tenant: "locked")) {
                #expect($0.status == .noContent)
            }
            try await client.execute(uri: "/api/tenant", method: .get, headers: headers(key, tenant: "locked")) {
                #expect($0.status == .unauthorized)
            }
            #expect(try await app.events(of: "ApiKeyRevoked", tenant: "locked").count == 1)
        }
    }

    @Test(arguments: Placements.all) func `a weaker role inside its own tenant is 403, and the platform routes want a platform key`(placement: String) async throws {
        try await withApp(placement: placement) { app, client in
            let admin = try await app.onboard(client, slug: "roles")
            func issue(_ role: String) async throws -> String {
                try await client.execute(uri: "/api/keys", method: .post, headers: headers(admin, tenant: "roles").merging([.contentType: "application/json"]),
                                         body: ByteBuffer(string: #"{"email":"\#(role)@roles.test","role":"\#(role)"}"#)) { response in
                    #expect(response.status == .created)
                    let json = try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any]
                    return try #require(json?["api_key"] as? String)
                }
            }
            let member = try await issue("member"), auditor = try await issue("auditor")
            for key in [member, auditor] {
                try await client.execute(uri: "/api/tenant", method: .get, headers: headers(key, tenant: "roles")) { #expect($0.status == .ok) }
                try await client.execute(uri: "/api/users", method: .get, headers: headers(key, tenant: "roles")) { response in
                    #expect(response.status == .forbidden)
                    #expect(String(buffer: response.body).contains("/problems/forbidden"))
                }
                try await client.execute(uri: "/api/admin/tenants", method: .get, headers: headers(key)) { #expect($0.status == .forbidden) }
            }
            try await client.execute(uri: "/api/admin/tenants", method: .get, headers: headers(nil)) { #expect($0.status == .unauthorized) }
            try await client.execute(uri: "/api/admin/tenants", method: .get, headers: headers(app.platformKey)) { #expect($0.status == .ok) }
            try await client.execute(uri: "/api/tenant", method: .get, headers: headers(app.platformKey, tenant: "roles")) {
                #expect($0.status == .notFound, "a platform key does not belong to a tenant")
            }
        }
    }

    @Test(arguments: Placements.all) func `a tenant route without a tenant is 400, and malformed or disagreeing tenants are 400`(placement: String) async throws {
        try await withApp(placement: placement) { app, client in
            let key = try await app.onboard(client, slug: "some-tenant")
            let cases: [(String, HTTPFields)] = [
                ("/api/tenant", headers(key)),
                ("/api/tenant", headers(key, tenant: "Some-Tenant")),
                ("/api/tenant", headers(key, tenant: String(repeating: "a", count: 10_000))),
                ("/some-tenant/api/tenant", headers(key, tenant: "other-tenant")),
                ("/api/tenant", headers(key, tenant: "some-tenant", host: "other-tenant.petstore.localhost")),
                ("/api/tenant", headers(key, host: "some.tenant.petstore.localhost")),
                ("/api/tenant", headers(key, host: "some_tenant.petstore.localhost:80")),
                ("/some.tenant/api/tenant", headers(key)),
            ]
            for (uri, fields) in cases {
                let response = try await send(client, uri, .get, fields)
                #expect(response.status == .badRequest, "\(uri) \(fields)")
                #expect(response.headers[.contentType] == "application/problem+json")
            }
            #expect(try await send(client, "/api/tenant", .get, headers(key, host: "127.0.0.1:8080")).status == .badRequest,
                    "an IP address names no tenant, and this route needs one")
            #expect(try await send(client, "/api/tenant", .get, headers(key, host: "some-tenant.petstore.localhost:8080")).status == .ok)
            #expect(try await send(client, "/api/tenant", .get, headers(key, host: "SOME-TENANT.petstore.localhost.")).status == .ok)
        }
    }

    @Test(arguments: Placements.all) func `through a pool of one connection, a request without a tenant after a tenant's request sees nothing`(placement: String) async throws {
        try await withApp(.router, poolSize: 1, placement: placement) { app, client in
            let key = try await app.onboard(client, slug: "pooled")
            try await client.execute(uri: "/api/users", method: .get, headers: headers(key, tenant: "pooled")) { #expect($0.status == .ok) }
            let (users, events) = try await app.dependencies.client.withConnection { connection in
                let users = try await connection.query("SELECT count(*) FROM users", logger: TestCluster.logger).decode(Int64.self).first(where: { _ in true })
                let events = try await connection.query("SELECT count(*) FROM events", logger: TestCluster.logger).decode(Int64.self).first(where: { _ in true })
                return (users, events)
            }
            #expect(users == 0 && events == 0)
            let all = try await scalar(app.database.superuserURL, "SELECT count(*) FROM users", as: Int64.self)
            #expect(all == 1, "the rows exist; the pooled connection carries no tenant into the next use")
        }
    }

    @Test(arguments: Placements.all) func `ten thousand interleaved requests of two tenants through a pool of two never see the other's rows`(placement: String) async throws {
        try await withApp(.router, poolSize: 2, placement: placement) { app, client in
            let keyA = try await app.onboard(client, slug: "left-tenant")
            let keyB = try await app.onboard(client, slug: "right-tenant")
            let prefixA = String(keyA.prefix(12)), prefixB = String(keyB.prefix(12))
            try await withThrowingTaskGroup(of: Void.self) { group in
                for worker in 0..<8 {
                    group.addTask {
                        for index in 0..<1250 {
                            let useA = (index + worker) % 2 == 0
                            let (key, slug, mine, theirs) = useA ? (keyA, "left-tenant", prefixA, prefixB) : (keyB, "right-tenant", prefixB, prefixA)
                            try await client.execute(uri: "/api/keys", method: .get, headers: headers(key, tenant: slug)) { response in
                                let body = String(buffer: response.body)
                                #expect(response.status == .ok)
                                #expect(body.contains(mine) && !body.contains(theirs))
                            }
                        }
                    }
                }
                try await group.waitForAll()
            }
        }
    }
}

extension HTTPFields {
    func merging(_ other: HTTPFields) -> HTTPFields {
        var merged = self
        for field in other { merged[field.name] = field.value }
        return merged
    }
}
