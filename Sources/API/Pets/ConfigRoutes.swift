import Domain
import EventLog
import Foundation
import Hummingbird
import Logging
import PostgresNIO
import Projectors
import Tenancy

/// `/api/config`: the tenant's settings, through the TenantConfig decider.
struct ConfigRoutes {
    let catalog: Catalog
    let runtime: ProjectionRuntime
    let table: RouteTable
    let logger: Logger

    func register(on group: RouterGroup<TenantRequestContext>) {
        group.route(.get, "/config", roles: [.admin, .member, .auditor], in: table) { _, context in try await show(context) }
        group.route(.put, "/config/{key}", roles: [.admin], in: table) { request, context in try await set(request, context) }
        group.route(.delete, "/config/{key}", roles: [.admin], in: table) { _, context in try await unset(context) }
    }

    /// Every effective value: the defaults, overridden by what the tenant set.
    func show(_ context: TenantRequestContext) async throws -> Response {
        let handle = catalog.handle(for: context.tenant)
        var values: [String: JSONValue] = [:]
        for (key, value) in TenantConfig.defaults { values[key] = try Self.json(value) }
        try await handle.withTransaction(logger: context.logger) { connection in
            let rows = try await connection.query(
                "SELECT key, value::text FROM tenant_config WHERE tenant_id = \(handle.tenant.id.rawValue)", logger: context.logger)
            for try await (key, value) in rows.decode((String, String).self) { values[key] = try CanonicalJSON.parse(value) }
        }
        return try JSONResponse.make(["values": JSONValue.object(values.keys.sorted().map { JSONValue.Member($0, values[$0]!) })])
    }

    func set(_ request: Request, _ context: TenantRequestContext) async throws -> Response {
        let key = try context.parameters.require("key")
        let body = try await JSONBody.read(request, context: context, allowed: ["value"])
        guard let raw = body.object["value"] else {
            throw Problem.badRequest("The body must be {\"value\": <json>}.", errors: [.init(field: "value", message: "is required")])
        }
        let value = try JSONDecoder().decode(ConfigValue.self, from: Data(CanonicalJSON.serialize(raw)))
        let outcome = try await run(context) { .set(key: key, value: value, at: Date()) }
        guard let stored = outcome.state.values[key] else { throw Problem.internalError() }
        return try JSONResponse.make(JSONValue.object(["key": .string(key), "value": try Self.json(stored)]))
    }

    func unset(_ context: TenantRequestContext) async throws -> Response {
        let key = try context.parameters.require("key")
        _ = try await run(context) { .unset(key: key, at: Date()) }
        return Response(status: .noContent)
    }

    private func run(_ context: TenantRequestContext, _ command: @escaping @Sendable () -> TenantConfigCommand) async throws -> CommandRunner<TenantConfig>.Outcome {
        let handle = catalog.handle(for: context.tenant)
        let metadata = EventMetadata(actor: context.principal.actor, requestID: context.requestID, correlationID: context.requestID)
        do {
            let outcome = try await ConfigCommands.runner(logger: logger).run(handle, id: handle.tenant.id.rawValue, metadata: metadata) { _ in command() }
            if outcome.append != nil { try await runtime.catchUp(tenant: handle.tenant.id, projections: ["tenant_config"], using: handle.client) }
            return outcome
        } catch let error as DomainError {
            throw Problem(error)
        }
    }

    static func json(_ value: ConfigValue) throws -> JSONValue {
        try CanonicalJSON.parse(try TenantConfigProjector.valueEncoder.encode(value))
    }
}
