import Database
import Domain
import EventLog
import Foundation
import Hummingbird
import Logging
import Operations
import Projectors
import Tenancy

/// `/api/config`: the tenant's settings, through the TenantConfig decider.
struct ConfigRoutes {
    let catalog: Catalog
    let config: ConfigOperations
    let commands: CommandResponder
    let table: RouteTable

    func register(on group: RouterGroup<TenantRequestContext>) {
        group.route(.get, "/config", roles: [.admin, .member, .auditor], in: table) { _, context in try await show(context) }
        group.route(.put, "/config/{key}", roles: [.admin], in: table) { request, context in try await set(request, context) }
        group.route(.delete, "/config/{key}", roles: [.admin], in: table) { _, context in try await unset(context) }
    }

    /// Every effective value: the defaults, overridden by what the tenant set.
    func show(_ context: TenantRequestContext) async throws -> Response {
        let values = try await config.values(catalog.handle(for: context.tenant))
        return try JSONResponse.make(["values": JSONValue.object(values.keys.sorted().map { JSONValue.Member($0, values[$0]!) })])
    }

    func set(_ request: Request, _ context: TenantRequestContext) async throws -> Response {
        let key = try context.parameters.require("key")
        let body = try await JSONBody.read(request, context: context, allowed: ["value"])
        guard let raw = body.object["value"] else {
            throw Problem.badRequest("The body must be {\"value\": <json>}.", errors: [.init(field: "value", message: "is required")])
        }
        let value = try JSONDecoder().decode(ConfigValue.self, from: Data(CanonicalJSON.serialize(raw)))
        return try await commands.respond(context) { session in
            let outcome = try await run(context, in: session) { .set(key: key, value: value, at: Date()) }
            guard let stored = outcome.state.values[key] else { throw Problem.internalError() }
            return Reply(try JSONResponse.make(JSONValue.object(["key": .string(key), "value": try Self.json(stored)])))
        }
    }

    func unset(_ context: TenantRequestContext) async throws -> Response {
        let key = try context.parameters.require("key")
        return try await commands.respond(context) { session in
            _ = try await run(context, in: session) { .unset(key: key, at: Date()) }
            return Reply(Response(status: .noContent))
        }
    }

    private func run(
        _ context: TenantRequestContext, in session: TenantSession, _ command: @Sendable () -> TenantConfigCommand
    ) async throws -> CommandRunner<TenantConfig>.Outcome {
        let handle = catalog.handle(for: context.tenant)
        let metadata = EventMetadata(actor: context.principal.actor, requestID: context.requestID, correlationID: context.requestID)
        return try await config.execute(handle, metadata: metadata, in: session, command)
    }

    static func json(_ value: ConfigValue) throws -> JSONValue { try ConfigOperations.json(value) }
}
