import Foundation
import Hummingbird
import Projectors

/// `GET /api/admin/projections`: each projection version's progress, and the lag this process
/// has seen between an event being recorded and it reaching the read model.
struct ProjectionRoutes {
    let runtime: ProjectionRuntime
    let table: RouteTable

    struct Item: Encodable {
        let name: String
        let version: String
        let state: String
        let tenants: Int
        let tenantsBehind: Int
        let appliedEvents: Int64
        let lagEvents: Int64
        let lagMsP50: Double?
        let lagMsP99: Double?
        let lagSamples: Int

        enum CodingKeys: String, CodingKey {
            case name, version, state, tenants, tenantsBehind, appliedEvents, lagEvents, lagMsP50, lagMsP99, lagSamples
        }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(name, forKey: .name)
            try container.encode(version, forKey: .version)
            try container.encode(state, forKey: .state)
            try container.encode(tenants, forKey: .tenants)
            try container.encode(tenantsBehind, forKey: .tenantsBehind)
            try container.encode(appliedEvents, forKey: .appliedEvents)
            try container.encode(lagEvents, forKey: .lagEvents)
            try container.encode(lagMsP50, forKey: .lagMsP50)
            try container.encode(lagMsP99, forKey: .lagMsP99)
            try container.encode(lagSamples, forKey: .lagSamples)
        }
    }

    func register(on group: RouterGroup<PlatformRequestContext>) {
        group.route(.get, "/projections", in: table) { _, _ in
            let items = try await runtime.status().map { status -> Item in
                let lag = status.state == "active" ? runtime.lag(of: status.name) : nil
                return Item(name: status.name, version: status.version, state: status.state, tenants: status.tenants,
                            tenantsBehind: status.tenantsBehind, appliedEvents: status.applied, lagEvents: status.lag,
                            lagMsP50: lag?.p50, lagMsP99: lag?.p99, lagSamples: lag?.samples ?? 0)
            }
            return try JSONResponse.make(["items": items])
        }
    }
}
