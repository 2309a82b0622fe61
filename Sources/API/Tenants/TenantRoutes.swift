import Database
import Domain
import EventLog
import Foundation
import Hummingbird
import Operations
import Tenancy

/// The caller's own tenant: `GET /api/tenant`, its users and keys.
struct TenantRoutes {
    let catalog: Catalog
    let tenants: TenantCommands
    let authenticator: Authenticator
    let commands: CommandResponder
    let table: RouteTable

    struct UserBody: Encodable {
        let id: String
        let email: String
        let role: String
    }

    struct KeyBody: Encodable {
        let id: String
        let prefix: String
        let userId: String
        let role: String
        let revoked: Bool
    }

    struct IssuedKey: Encodable {
        let id: String
        let prefix: String
        let apiKey: String?
    }

    func register(on group: RouterGroup<TenantRequestContext>) {
        group.route(.get, "/tenant", roles: [.admin, .member, .auditor], in: table) { _, context in
            try JSONResponse.make(AdminTenantRoutes.TenantBody(context.tenant))
        }
        group.route(.get, "/users", roles: [.admin], in: table) { _, context in
            let state = try await tenants.state(of: context.tenant.id)
            let users = (state?.users.values.sorted { $0.email < $1.email } ?? []).map {
                UserBody(id: $0.id.uuidString.lowercased(), email: $0.email, role: $0.role.rawValue)
            }
            return try JSONResponse.make(["items": users])
        }
        group.route(.get, "/keys", roles: [.admin], in: table) { _, context in
            let state = try await tenants.state(of: context.tenant.id)
            let keys = (state?.apiKeys.values.sorted { $0.prefix < $1.prefix } ?? []).map {
                KeyBody(id: $0.id.uuidString.lowercased(), prefix: $0.prefix, userId: $0.userID.uuidString.lowercased(),
                        role: $0.role.rawValue, revoked: $0.revoked)
            }
            return try JSONResponse.make(["items": keys])
        }
        group.route(.post, "/keys", roles: [.admin], in: table) { request, context in try await issue(request, context) }
        group.route(.delete, "/keys/{id}", roles: [.admin], in: table) { _, context in try await revoke(context) }
        group.route(.delete, "/users/{id}", roles: [.admin], in: table) { request, context in try await erase(request, context) }
    }

    func metadata(_ context: TenantRequestContext) -> EventMetadata {
        EventMetadata(actor: context.principal.actor, requestID: context.requestID, correlationID: context.requestID)
    }

    /// `POST /api/keys {"email", "role"}`: adds the user if new and issues them a key, shown once.
    func issue(_ request: Request, _ context: TenantRequestContext) async throws -> Response {
        var body = try await JSONBody.read(request, context: context, allowed: ["email", "role"])
        let email = body.string("email", required: true)
        let roleName = body.string("role", required: true)
        try body.finish()
        guard let email, let roleName else { throw Problem.badRequest("email and role are required") }
        guard let role = Role(rawValue: roleName) else {
            throw Problem.validation("The key cannot be issued as asked.", errors: [.init(field: "role", message: "must be admin, member or auditor")])
        }
        return try await commands.respond(context) { session in
            let issued: (keyID: UUID, key: APIKey)
            if let user = try await tenants.state(in: session)?.user(withEmail: email.lowercased()) {
                guard user.role == role else {
                    throw Problem.validation("The key cannot be issued as asked.", errors: [.init(field: "role", message: "the user has role \(user.role.rawValue)")])
                }
                issued = try await tenants.issueKey(tenant: context.tenant.id, userID: user.id, role: role, metadata: metadata(context), in: session)
            } else {
                let added = try await tenants.addUserWithKey(tenant: context.tenant.id, email: email, role: role, metadata: metadata(context), in: session)
                issued = (added.keyID, added.key)
            }
            let id = issued.keyID.uuidString.lowercased()
            // A replay of this response must not hand out the secret again: it is recorded without it.
            return Reply(try JSONResponse.make(IssuedKey(id: id, prefix: issued.key.prefix, apiKey: issued.key.value), status: .created),
                         replayBody: try JSONResponse.body(IssuedKey(id: id, prefix: issued.key.prefix, apiKey: nil)))
        }
    }

    /// `DELETE /api/users/{id}?erase=true`: forgets a person (GDPR art. 17). Their keys are
    /// revoked and the key their personal data is sealed with is destroyed, in one transaction;
    /// the log keeps the sealed bytes and still verifies. `erase=true` is required: there is no
    /// removal that keeps the data, and no erasure by accident.
    func erase(_ request: Request, _ context: TenantRequestContext) async throws -> Response {
        let query = try QueryParameters(request, allowed: ["erase"])
        guard let id = UUID(uuidString: try context.parameters.require("id")) else { throw Problem.notFound() }
        guard query["erase"] == "true" else {
            throw Problem.badRequest("Removing a user erases their personal data for good: ask with erase=true.",
                                     errors: [.init(field: "erase", message: "must be true")])
        }
        return try await commands.respond(context) { session in
            try await tenants.execute(.eraseUser(id: id, at: Date()), on: context.tenant.id, metadata: metadata(context), in: session)
            session.afterCommit { [authenticator] in authenticator.invalidate() }
            return Reply(Response(status: .noContent))
        }
    }

    func revoke(_ context: TenantRequestContext) async throws -> Response {
        guard let id = UUID(uuidString: try context.parameters.require("id")) else { throw Problem.notFound() }
        return try await commands.respond(context) { session in
            try await tenants.execute(.revokeApiKey(id: id, at: Date()), on: context.tenant.id, metadata: metadata(context), in: session)
            // Cached keys are forgotten once the revocation is visible to every lookup.
            session.afterCommit { [authenticator] in authenticator.invalidate() }
            return Reply(Response(status: .noContent))
        }
    }
}
