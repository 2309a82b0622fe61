import Domain
import EventLog
import HTTPTypes
import Tenancy

/// One route as the OpenAPI document describes it: method, templated path, who may call it, what
/// it takes and every answer it can give.
struct OpenAPIOperation: Sendable {
    /// Who may call the route; decides its security, its `X-Tenant-ID` parameter and the problems
    /// the middleware in front of it can answer with.
    enum Access: Sendable, Equatable {
        /// No key, no tenant: health checks and this document.
        case open
        /// `/api/admin/...`: a platform admin key.
        case platform
        /// `/api/...` under a resolved tenant, for these roles of that tenant.
        case tenant(Set<Role>)
    }

    struct Parameter: Sendable {
        enum Location: String, Sendable { case path, query, header }

        let name: String
        let location: Location
        let required: Bool
        let description: String
        let schema: JSONValue

        static func path(_ name: String, _ schema: JSONValue, _ description: String) -> Parameter {
            Parameter(name: name, location: .path, required: true, description: description, schema: schema)
        }

        static func query(_ name: String, _ schema: JSONValue, _ description: String) -> Parameter {
            Parameter(name: name, location: .query, required: false, description: description, schema: schema)
        }

        static func header(_ name: String, _ schema: JSONValue, _ description: String) -> Parameter {
            Parameter(name: name, location: .header, required: false, description: description, schema: schema)
        }
    }

    /// The answer when the route does what it was asked.
    struct Success: Sendable {
        let status: Int
        let description: String
        /// The `application/json` body; nil for a response without one (204).
        let schema: JSONValue?
        /// Response header names with what they carry.
        var headers: [(name: String, description: String)] = []
        /// Media types of bodies that are not JSON (Prometheus text, NDJSON), sent instead of or
        /// besides the JSON one.
        var otherMediaTypes: [String] = []
        /// Operations this answer leads to (OpenAPI links): the operation's id, and the path
        /// parameter it fills from the body with a runtime expression such as `$response.body#/id`.
        var links: [(operationID: String, parameter: String, expression: String)] = []
    }

    /// A problem+json answer the route can give, and why.
    struct Failure: Sendable {
        let status: Int
        let description: String

        init(_ status: Int, _ description: String) {
            self.status = status
            self.description = description
        }
    }

    let method: HTTPRequest.Method
    /// As registered, with `{name}` parameters (`/api/pets/{id}`): the form `RouteTable` keeps.
    let path: String
    let operationID: String
    let tag: String
    let summary: String
    let details: String?
    let access: Access
    let parameters: [Parameter]
    /// The name of the component schema of the `application/json` request body, if any.
    let body: String?
    let success: Success
    let failures: [Failure]

    init(
        _ method: HTTPRequest.Method, _ path: String, id operationID: String, tag: String, access: Access,
        summary: String, details: String? = nil, parameters: [Parameter] = [], body: String? = nil,
        success: Success, failures: [Failure] = []
    ) {
        self.method = method
        self.path = path
        self.operationID = operationID
        self.tag = tag
        self.summary = summary
        self.details = details
        self.access = access
        self.parameters = parameters
        self.body = body
        self.success = success
        self.failures = failures
    }
}

extension OpenAPIOperation {
    /// Roles by name, sorted so the document is stable.
    var roleNames: [String] {
        switch access {
        case .open: []
        case .platform: [Principal.platformAdminName]
        case .tenant(let roles): roles.map(\.rawValue).sorted()
        }
    }

    /// Commands, tenant or platform, take an idempotency key.
    var isCommand: Bool {
        access != .open && [.post, .put, .patch, .delete].contains(method)
    }

    static let idempotencyKey = Parameter.header(
        "Idempotency-Key", JSONSchema.string(pattern: "^[ -~]{1,255}$"),
        "Makes a retry safe: the first 2xx response to this key (per tenant and API key) is stored and replayed, with "
            + "`Idempotent-Replayed: true`, for 24 hours. On tenant routes it is stored in the transaction of the command's events.")

    static let idempotencyFailures = [
        Failure(400, "The Idempotency-Key is empty, longer than 255 characters or not visible ASCII."),
        Failure(409, "A request with this Idempotency-Key is still running (`idempotency-key-in-use`)."),
        Failure(422, "The Idempotency-Key was used for a different request (`idempotency-key-reused`)."),
    ]

    /// The parameters the route's position adds to its own: the optional tenant header, and the
    /// idempotency key on commands.
    var allParameters: [Parameter] {
        guard case .tenant = access else { return parameters + (isCommand ? [Self.idempotencyKey] : []) }
        var all = parameters + [.header(
            TenantResolver.headerName, JSONSchema.string(pattern: JSONSchema.slugPattern),
            "The tenant's slug, when neither the host ({tenant}.<base domain>) nor the path (/{tenant}/api/...) names it. "
                + "Sources that disagree are a 400."
        )]
        if isCommand { all.append(Self.idempotencyKey) }
        return all
    }

    /// What the middleware in front of the route can answer, merged with the route's own problems.
    var allFailures: [Failure] {
        var merged: [Int: [String]] = [:]
        let implied: [Failure] = switch access {
        case .open: []
        case .platform: [
            Failure(401, "The API key is missing, malformed, unknown or revoked (with `WWW-Authenticate: Bearer`)."),
            Failure(403, "The key is not a platform admin key."),
        ] + (isCommand ? Self.idempotencyFailures : [])
        case .tenant: [
            Failure(400, "No tenant is named, or its slug is malformed, or the subdomain, path and X-Tenant-ID disagree."),
            Failure(401, "The API key is missing, malformed, unknown or revoked (with `WWW-Authenticate: Bearer`), whether or not the tenant exists."),
            Failure(403, "The key's role may not call this route, or the tenant is suspended (`tenant-suspended`)."),
            Failure(404, "The tenant is unknown, or the key does not belong to it: the same answer as any missing resource."),
            Failure(429, "A limit of the tenant's plan is reached (`quota-exceeded`): the quota of the current window, or the burst limit; "
                + "the problem's `policy` names the `RateLimit-Policy` entry hit, and `Retry-After` says when to try again."),
            Failure(503, "The rate limiter's store cannot be reached and the server is configured to fail closed."),
        ] + (isCommand ? Self.idempotencyFailures : [])
        }
        for failure in implied + failures { merged[failure.status, default: []].append(failure.description) }
        return merged.keys.sorted().map { Failure($0, merged[$0, default: []].joined(separator: " ")) }
    }

    /// The OpenAPI Operation Object.
    var json: JSONValue {
        var description = details ?? summary
        switch access {
        case .open: description += "\n\nNeeds no API key and no tenant."
        case .platform: description += "\n\nPlatform route: no tenant; roles: platform_admin."
        case .tenant: description += "\n\nTenant route; roles: \(roleNames.joined(separator: ", "))."
        }
        var responses: [JSONValue.Member] = [JSONValue.Member(String(success.status), successJSON)]
        for failure in allFailures {
            var members: [JSONValue.Member] = [
                .init("description", .string(failure.description)),
                .init("content", .object(["application/problem+json": .object(["schema": JSONSchema.ref("Problem")])])),
            ]
            if failure.status == 401 {
                members.append(.init("headers", .object([
                    "WWW-Authenticate": .object(["description": .string("`Bearer realm=\"petstore\"`"), "schema": JSONSchema.string()]),
                ])))
            }
            if failure.status == 429 {
                members.append(.init("headers", .object([
                    "Retry-After": .object(["description": .string("Seconds until a request would be admitted."), "schema": JSONSchema.string()]),
                ])))
            }
            responses.append(.init(String(failure.status), .object(members)))
        }
        return JSONValue.compact([
            "operationId": .string(operationID),
            "tags": .array([.string(tag)]),
            "summary": .string(summary),
            "description": .string(description),
            "parameters": allParameters.isEmpty ? nil : .array(allParameters.map(\.json)),
            "requestBody": body.map { name in
                .object([
                    "required": .bool(true),
                    "content": .object(["application/json": .object(["schema": JSONSchema.ref(name)])]),
                ])
            },
            "responses": .object(responses),
            "security": access == .open ? .array([]) : .array([.object(["bearer": .array([])])]),
            "x-roles": access == .open ? nil : .array(roleNames.map(JSONValue.string)),
        ])
    }

    /// Sent on every tenant response.
    static let rateLimitHeaders: [(name: String, description: String)] = [
        ("X-RateLimit-Limit", "The plan's quota per window."),
        ("X-RateLimit-Remaining", "Requests left in the current quota window."),
        ("X-RateLimit-Reset", "Unix time at which the current quota window ends and the quota is whole again."),
        ("RateLimit-Policy", "IETF draft: the quota and the burst limit, `\"hour\";q=<quota>;w=3600, \"burst\";q=<burst>;w=<seconds>` "
            + "(the quota's name is its window: second, minute, hour, day or `<n>s`)."),
        ("RateLimit", "IETF draft: the policy closest to exhaustion, `\"<policy>\";r=<remaining>;t=<seconds to reset>`."),
    ]

    private var successJSON: JSONValue {
        var all = success.headers
        if case .tenant = access { all += Self.rateLimitHeaders }
        if isCommand { all.append((name: "Idempotent-Replayed", description: "`true` when this is the stored response to an earlier request with the same Idempotency-Key.")) }
        var content = success.schema.map { [JSONValue.Member("application/json", .object(["schema": $0]))] } ?? []
        content += success.otherMediaTypes.map { JSONValue.Member($0, .object(["schema": JSONSchema.string()])) }
        let headers = all.map { header in
            JSONValue.Member(header.name, .object(["description": .string(header.description), "schema": JSONSchema.string()]))
        }
        return JSONValue.compact([
            "description": .string(success.description),
            "headers": headers.isEmpty ? nil : .object(headers),
            "content": content.isEmpty ? nil : .object(content),
            "links": success.links.isEmpty ? nil : .object(success.links.map { link in
                JSONValue.Member(link.operationID, .object([
                    "operationId": .string(link.operationID),
                    "parameters": .object([JSONValue.Member(link.parameter, .string(link.expression))]),
                ]))
            }),
        ])
    }
}

extension OpenAPIOperation.Parameter {
    var json: JSONValue {
        .object([
            "name": .string(name),
            "in": .string(location.rawValue),
            "required": .bool(required),
            "description": .string(description),
            "schema": schema,
        ])
    }
}
