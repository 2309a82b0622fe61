import Domain
import HTTPTypes
import Hummingbird
import Synchronization
import Tenancy

/// What the server answers to, kept as it registers: the cross-tenant matrix and the OpenAPI
/// document are checked against it, so neither can fall behind the routes.
public final class RouteTable: Sendable {
    public struct Entry: Sendable, Hashable {
        public let method: HTTPRequest.Method
        /// As registered, with `{name}` parameters, after the group prefix (`/api/...`).
        public let path: String
        /// The tenant roles that may call a tenant route; empty for the others.
        public let roles: Set<Role>
        public let tenantScoped: Bool
        /// A platform admin's route (`/api/admin/...`, `/metrics`).
        public var platform = false
    }

    private let entries = Mutex<[Entry]>([])

    public init() {}

    public var all: [Entry] { entries.withLock { $0 } }

    func add(_ entry: Entry) {
        entries.withLock { $0.append(entry) }
    }

    /// The methods registered for the templates `path` matches (`/api/pets/42` matches
    /// `/api/pets/{id}`), sorted; empty when no route has this path.
    public func methods(forPath path: String) -> [HTTPRequest.Method] {
        let segments = path.split(separator: "/")
        let methods = all.filter { entry in
            let template = entry.path.split(separator: "/")
            return template.count == segments.count && zip(template, segments).allSatisfy { pattern, segment in
                pattern == segment || (pattern.hasPrefix("{") && pattern.hasSuffix("}"))
            }
        }.map(\.method)
        return Set(methods).sorted { $0.rawValue < $1.rawValue }
    }
}

extension RouterGroup where Context == TenantRequestContext {
    /// Registers a tenant route with the roles allowed to call it: there is no way to register
    /// one without saying who may call it, so every route denies by default.
    @discardableResult
    func route(
        _ method: HTTPRequest.Method, _ path: String, roles: Set<Role>, in table: RouteTable,
        _ handler: @escaping @Sendable (Request, TenantRequestContext) async throws -> Response
    ) -> Self {
        table.add(.init(method: method, path: "/api" + path, roles: roles, tenantScoped: true))
        on(RouterPath(path.replacingOccurrences(of: "{", with: ":").replacingOccurrences(of: "}", with: "")), method: method) { request, context in
            try context.require(roles)
            return try await handler(request, context)
        }
        return self
    }
}

extension RouterGroup where Context == PlatformRequestContext {
    @discardableResult
    func route(
        _ method: HTTPRequest.Method, _ path: String, in table: RouteTable, prefix: String = "/api/admin",
        _ handler: @escaping @Sendable (Request, PlatformRequestContext) async throws -> Response
    ) -> Self {
        table.add(.init(method: method, path: prefix + path, roles: [], tenantScoped: false, platform: true))
        on(RouterPath(path.replacingOccurrences(of: "{", with: ":").replacingOccurrences(of: "}", with: "")), method: method, use: handler)
        return self
    }
}
