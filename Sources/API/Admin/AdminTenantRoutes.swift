import Domain
import EventLog
import Foundation
import Hummingbird
import Logging
import Operations
import Tenancy

/// `/api/admin/tenants`: onboarding, listing, plan and status changes, offboarding.
struct AdminTenantRoutes {
    let catalog: Catalog
    let tenants: TenantCommands
    let provisioner: Provisioner
    let onboarding: Onboarding
    let commands: CommandResponder
    /// Moves between placements; nil without the database owner's login.
    let mover: TenantMove?
    let table: RouteTable

    struct TenantBody: Encodable {
        let id: String
        let slug: String
        let name: String
        let plan: String
        let status: String
        let placement: String
        let server: String
        let createdAt: Date
        let updatedAt: Date
        let removalScheduledAt: Date?

        init(_ record: TenantRecord) {
            id = record.id.description
            slug = record.slug
            name = record.name
            plan = record.plan.rawValue
            status = record.status.rawValue
            placement = record.placement.rawValue
            server = record.server
            createdAt = record.createdAt
            updatedAt = record.updatedAt
            removalScheduledAt = record.removalScheduledAt
        }
    }

    struct Created: Encodable {
        let tenant: TenantBody
        let adminApiKey: String?
    }

    func register(on group: RouterGroup<PlatformRequestContext>) {
        group.route(.post, "/tenants", in: table) { request, context in try await create(request, context) }
        group.route(.get, "/tenants", in: table) { request, _ in try await list(request) }
        group.route(.get, "/tenants/{slug}", in: table) { _, context in try JSONResponse.make(TenantBody(try await tenant(context))) }
        group.route(.patch, "/tenants/{slug}", in: table) { request, context in try await update(request, context) }
        group.route(.delete, "/tenants/{slug}", in: table) { _, context in try await offboard(context) }
        group.route(.post, "/tenants/{slug}/move", in: table) { request, context in try await move(request, context) }
    }

    struct Moved: Encodable {
        struct Move: Encodable {
            let from: String
            let to: String
            let lastSeq: Int64
            let headHash: String
            let eventsCopiedOnline: Int64
            let eventsCopiedInPause: Int64
            let readModelRows: Int64
            let writesPausedMs: Double
        }

        let tenant: TenantBody
        /// Nil when the tenant was there already.
        let move: Move?
    }

    /// Moves the tenant while it serves, and answers once the move is done (the source's copy
    /// removed). A move stopped on the way (the request cut off, a crash) resumes when asked again.
    func move(_ request: Request, _ context: PlatformRequestContext) async throws -> Response {
        var body = try await JSONBody.read(request, context: context, allowed: ["to", "server"])
        let to = body.string("to", required: true)
        let server = body.string("server")
        try body.finish()
        guard let to, let target = Placement(rawValue: to) else {
            throw Problem.validation("The tenant cannot be moved there.", errors: [.init(field: "to", message: "must be shared, schema or database")])
        }
        let record = try await tenant(context)
        guard let mover else { throw Problem.serviceUnavailable("This server has no database owner's login, which moving a tenant needs.") }
        return try await commands.respond(context) {
            let report = try await mover.move(slug: record.slug, to: target, server: server)
            let current = try await catalog.tenant(id: record.id) ?? record
            return Reply(try JSONResponse.make(Moved(tenant: TenantBody(current), move: report.map { report in
                Moved.Move(from: report.from.rawValue, to: report.to.rawValue, lastSeq: report.lastSeq, headHash: report.headHash,
                           eventsCopiedOnline: report.copiedOnline, eventsCopiedInPause: report.copiedInPause, readModelRows: report.readModelRows,
                           writesPausedMs: ((Double(report.pause.components.attoseconds) / 1e14 + Double(report.pause.components.seconds) * 10_000).rounded()) / 10)
            })))
        }
    }

    func metadata(_ context: PlatformRequestContext) -> EventMetadata {
        EventMetadata(actor: context.principal.actor, requestID: context.requestID, correlationID: context.requestID)
    }

    func create(_ request: Request, _ context: PlatformRequestContext) async throws -> Response {
        var body = try await JSONBody.read(request, context: context, allowed: ["slug", "name", "plan", "placement", "server", "admin_email"])
        let slug = body.string("slug", required: true)
        let name = body.string("name", required: true)
        let plan = body.string("plan", required: true)
        let placement = body.string("placement")
        let server = body.string("server")
        let adminEmail = body.string("admin_email")
        try body.finish()
        guard let slug, let name, let plan else { throw Problem.badRequest("slug, name and plan are required") }

        var problems = Tenant.validateSlug(slug).map { Problem.FieldError(field: $0.field, message: $0.message) }
        let chosenPlan = Plan(rawValue: plan)
        if chosenPlan == nil { problems.append(.init(field: "plan", message: "must be one of \(Plan.allCases.map(\.rawValue).joined(separator: ", "))")) }
        let chosenPlacement = placement.map { Placement(rawValue: $0) }
        if case .some(nil) = chosenPlacement { problems.append(.init(field: "placement", message: "must be shared, schema or database")) }
        // Checked before the tenant exists: provisioning adds the admin after creating the
        // tenant, and a refusal there would leave it half made.
        var email: String?
        if let adminEmail {
            var validation = Validation()
            email = validation.email(adminEmail)
            problems += validation.errors.map { .init(field: "admin_email", message: $0.message) }
        }
        guard problems.isEmpty, let chosenPlan else { throw Problem.validation("The tenant cannot be created as asked.", errors: problems) }

        return try await commands.respond(context) {
            // The same slug again, while its first onboarding is unfinished, resumes it.
            let outcome = try await onboarding.run(slug: slug, name: name, plan: chosenPlan, placement: chosenPlacement ?? nil,
                                                   server: server, adminEmail: email ?? "admin@\(slug).petstore.invalid", metadata: metadata(context))
            let current = outcome.tenant
            // A replay of this response must not hand out the key again: it is recorded without it.
            return Reply(try JSONResponse.make(Created(tenant: TenantBody(current), adminApiKey: outcome.adminKey?.value), status: .created,
                                               headers: [.location: "/api/admin/tenants/\(slug)"]),
                         replayBody: try JSONResponse.body(Created(tenant: TenantBody(current), adminApiKey: nil)))
        }
    }

    func list(_ request: Request) async throws -> Response {
        let query = try QueryParameters(request, allowed: ["limit", "cursor"])
        let limit = try Pagination.limit(query, default: 50, maximum: 200)
        let cursor = try Pagination.cursor(query)
        let records = try await catalog.tenants(after: cursor, limit: limit + 1)
        let page = Array(records.prefix(limit))
        let next = records.count > limit ? page.last.map { Pagination.encode($0.slug) } : nil
        return try JSONResponse.make(ListPage(items: page.map(TenantBody.init), nextCursor: next))
    }

    func tenant(_ context: PlatformRequestContext) async throws -> TenantRecord {
        let slug = try context.parameters.require("slug")
        guard let record = try await catalog.tenant(slug: slug) else { throw Problem.notFound() }
        return record
    }

    func update(_ request: Request, _ context: PlatformRequestContext) async throws -> Response {
        let record = try await tenant(context)
        var body = try await JSONBody.read(request, context: context, allowed: ["plan", "status", "name"])
        // Neither can be cleared: null is refused rather than read as "unchanged".
        let plan = body.string("plan", nullable: false)
        let status = body.string("status", nullable: false)
        _ = body.string("name")
        try body.finish()
        if body.has("name") {
            throw Problem.validation("The tenant cannot be changed as asked.", errors: [.init(field: "name", message: "cannot be changed")])
        }
        var problems: [Problem.FieldError] = []
        let newPlan = plan.map { Plan(rawValue: $0) }
        if case .some(nil) = newPlan { problems.append(.init(field: "plan", message: "must be one of \(Plan.allCases.map(\.rawValue).joined(separator: ", "))")) }
        if let status, !["active", "suspended"].contains(status) { problems.append(.init(field: "status", message: "must be active or suspended")) }
        guard problems.isEmpty else { throw Problem.validation("The tenant cannot be changed as asked.", errors: problems) }

        let now = Date()
        return try await commands.respond(context) {
            if let newPlan = newPlan ?? nil {
                try await tenants.execute(.changePlan(newPlan, at: now), on: record.id, metadata: metadata(context))
            }
            if status == "suspended" {
                try await tenants.execute(.suspend(reason: nil, at: now), on: record.id, metadata: metadata(context))
            } else if status == "active" {
                try await tenants.execute(.reactivate(at: now), on: record.id, metadata: metadata(context))
            }
            return Reply(try JSONResponse.make(TenantBody(try await catalog.tenant(id: record.id) ?? record)))
        }
    }

    /// Offboarding suspends at once and schedules removal; nothing is exported or deleted yet.
    func offboard(_ context: PlatformRequestContext) async throws -> Response {
        let record = try await tenant(context)
        return try await commands.respond(context) {
            try await tenants.execute(.requestOffboarding(at: Date()), on: record.id, metadata: metadata(context))
            return Reply(try JSONResponse.make(TenantBody(try await catalog.tenant(id: record.id) ?? record), status: .accepted))
        }
    }
}
