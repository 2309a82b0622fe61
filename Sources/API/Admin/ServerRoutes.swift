import Foundation
import Hummingbird
import Tenancy

/// `/api/admin/servers`: the PostgreSQL servers tenants may be placed on.
struct ServerRoutes {
    let servers: ServerRegistry
    let commands: CommandResponder
    let table: RouteTable

    struct ServerBody: Encodable {
        let name: String
        let display: String
        let addedAt: Date
        let tenants: Int

        init(_ server: ServerRegistry.Server) {
            name = server.name
            display = server.display
            addedAt = server.addedAt
            tenants = server.tenants
        }
    }

    func register(on group: RouterGroup<PlatformRequestContext>) {
        group.route(.get, "/servers", in: table) { _, _ in
            try JSONResponse.make(["items": try await servers.list().map(ServerBody.init)])
        }
        group.route(.post, "/servers", in: table) { request, context in
            var body = try await JSONBody.read(request, context: context, allowed: ["name", "url"])
            let name = body.string("name", required: true, nullable: false)
            let url = body.string("url", required: true, nullable: false)
            try body.finish()
            guard let name, let url else { throw Problem.badRequest("name and url are required") }
            return try await commands.respond(context) {
                let server = try await servers.add(name: name, url: url)
                return Reply(try JSONResponse.make(ServerBody(server), status: .created, headers: [.location: "/api/admin/servers/\(name)"]))
            }
        }
        group.route(.delete, "/servers/{name}", in: table) { _, context in
            let name = try context.parameters.require("name")
            return try await commands.respond(context) {
                try await servers.remove(name: name)
                return Reply(Response(status: .noContent))
            }
        }
    }
}
