import Hummingbird
import NIOCore
import PostgresNIO
import Projectors
import Tenancy

/// `GET /metrics`: the Prometheus text exposition, for a platform admin key (the series name
/// tenants, so they are not for tenants' eyes). Prometheus sends it with `authorization`.
struct MetricsRoutes {
    let metrics: AppMetrics
    let runtime: ProjectionRuntime
    let catalog: Catalog
    let limiter: RateLimiter?
    let pools: [(name: String, client: PostgresClient, maximum: Int)]
    let table: RouteTable

    func register(on group: RouterGroup<PlatformRequestContext>) {
        group.route(.get, "", in: table, prefix: "/metrics") { _, _ in
            let text = await metrics.render(runtime: runtime, pools: pools, limiter: limiter) { [catalog] id in try? await catalog.tenant(id: id)?.slug }
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                            body: .init(byteBuffer: ByteBuffer(bytes: text)))
        }
    }
}
