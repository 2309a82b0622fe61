import EventLog
import Tenancy

/// The OpenAPI 3.1 document of every route, served at `GET /openapi.json`.
///
/// Its paths come only from `operations`, which `OpenAPITests` holds against the route table (every
/// registered route is documented, with its roles) and against the running server (every
/// documented route answers), so the document cannot fall behind the routes.
enum OpenAPIDocument {
    /// The document for a server resolving tenants as `resolver` does, listening on `port`.
    static func make(resolver: TenantResolver, port: Int) -> JSONValue {
        .object([
            "openapi": .string("3.1.0"),
            "info": .object([
                "title": .string("Petstore API"),
                "version": .string("1.0.0"),
                "description": .string("""
                    A multi-tenant pet store. Errors are application/problem+json (RFC 9457); JSON names are snake_case; \
                    times are RFC 3339 UTC; ids are UUIDs; lists are {"items": [...], "next_cursor": "..." | null}.
                    """),
            ]),
            "servers": .array(servers(resolver: resolver, port: port)),
            "tags": .array([
                tag("pets", "A tenant's pets, event-sourced: history and reads as of a past time."),
                tag("config", "A tenant's settings."),
                tag("tenant", "The caller's own tenant, its users and API keys."),
                tag("admin", "Platform administration: no tenant, a platform admin key."),
                tag("operations", "Health checks and this document: no key, no tenant."),
            ]),
            "paths": paths,
            "components": .object([
                "securitySchemes": .object([
                    "bearer": .object([
                        "type": .string("http"),
                        "scheme": .string("bearer"),
                        "description": .string("""
                            `Authorization: Bearer <api key>`. Tenant keys carry one role of their tenant (admin, member, auditor); \
                            platform keys the platform_admin role. A missing or bad key is a 401 with `WWW-Authenticate: Bearer`.
                            """),
                    ]),
                ]),
                "schemas": schemas,
            ]),
        ])
    }

    /// One Path Item per templated path, with one operation per method.
    static var paths: JSONValue {
        var order: [String] = []
        var items: [String: [JSONValue.Member]] = [:]
        for operation in operations {
            if items[operation.path] == nil { order.append(operation.path) }
            items[operation.path, default: []].append(.init(operation.method.rawValue.lowercased(), operation.json))
        }
        return .object(order.map { JSONValue.Member($0, .object(items[$0, default: []])) })
    }

    /// The three ways to name a tenant, as far as they are switched on, and the root for the rest.
    static func servers(resolver: TenantResolver, port: Int) -> [JSONValue] {
        let tenant: JSONValue = .object([
            "default": .string("acme"),
            "description": .string("The tenant's slug: ^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$."),
        ])
        var servers: [JSONValue] = []
        if resolver.strategies.contains(.subdomain) {
            servers.append(.object([
                "url": .string("http://{tenant}.\(resolver.baseDomain):{port}"),
                "description": .string("Subdomain: the host {tenant}.\(resolver.baseDomain) names the tenant. For tenant routes (/api/...)."),
                "variables": .object(["tenant": tenant, "port": .object(["default": .string(String(port))])]),
            ]))
        }
        if resolver.strategies.contains(.path) {
            servers.append(.object([
                "url": .string("/{tenant}"),
                "description": .string("Path prefix: /{tenant}/api/... names the tenant. For tenant routes (/api/...)."),
                "variables": .object(["tenant": tenant]),
            ]))
        }
        let header = resolver.strategies.contains(.header)
            ? "Header: on tenant routes (/api/...), send `\(TenantResolver.headerName): {tenant}`. "
            : ""
        servers.append(.object([
            "url": .string("/"),
            "description": .string(header + "Platform routes (/api/admin/...), health checks and this document, which need no tenant."),
        ]))
        return servers
    }

    private static func tag(_ name: String, _ description: String) -> JSONValue {
        .object(["name": .string(name), "description": .string(description)])
    }
}
