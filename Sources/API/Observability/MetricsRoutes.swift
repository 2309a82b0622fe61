import Hummingbird
import NIOCore
import Operations
import Projectors
import Tenancy

/// `GET /metrics`: the Prometheus text exposition, for a platform admin key (the series name
/// tenants, so they are not for tenants' eyes). Prometheus sends it with `authorization`.
struct MetricsRoutes {
    let dependencies: AppDependencies
    let table: RouteTable

    func register(on group: RouterGroup<PlatformRequestContext>) {
        group.route(.get, "", in: table, prefix: "/metrics") { _, _ in
            let text = await dependencies.renderMetrics() ?? []
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                            body: .init(byteBuffer: ByteBuffer(bytes: text)))
        }
    }
}
