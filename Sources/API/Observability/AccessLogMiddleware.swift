import Database
import EventLog
import Foundation
import Hummingbird
import Logging
import Operations
import Synchronization
import Tenancy

/// What inner middleware learns about a request, for the access log and metrics outside it: the
/// context is passed inward by value, so what comes back out needs a reference.
public final class RequestRecord: Sendable {
    struct Fields {
        var tenant: (id: TenantID, slug: String)?
        var principal: String?
        var rateLimited = false
    }

    private let fields = Mutex(Fields())

    init() {}

    var tenant: (id: TenantID, slug: String)? {
        get { fields.withLock { $0.tenant } }
        set { fields.withLock { $0.tenant = newValue } }
    }

    var principal: String? {
        get { fields.withLock { $0.principal } }
        set { fields.withLock { $0.principal = newValue } }
    }

    var rateLimited: Bool {
        get { fields.withLock { $0.rateLimited } }
        set { fields.withLock { $0.rateLimited = newValue } }
    }
}

/// One line per request (method, route template, status, duration, tenant, principal; the
/// request id comes with the logger) and the request metrics. Never the body, the query string
/// or the Authorization header: keys and data stay out of logs.
struct AccessLogMiddleware: RouterMiddleware {
    typealias Context = AppRequestContext

    let metrics: AppMetrics?

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let start = ContinuousClock.now
        let response: Response
        do {
            response = try await next(request, context)
        } catch {
            finish(request, context, status: 500, start: start)
            throw error
        }
        finish(request, context, status: response.status.code, start: start)
        return response
    }

    private func finish(_ request: Request, _ context: Context, status: Int, start: ContinuousClock.Instant) {
        let duration = ContinuousClock.now - start
        // The template, never the raw path, so that ids do not become series or log noise.
        let route = context.endpointPath ?? "unmatched"
        let tenant = context.record.tenant
        let label = tenant.map { metrics?.label(tenant: $0.id, slug: $0.slug) ?? $0.slug }
        metrics?.request(tenant: label, endpoint: route, method: request.method.rawValue, status: status, duration: duration)
        guard context.logger.logLevel <= .info else { return }
        var metadata: Logger.Metadata = [
            "method": "\(request.method.rawValue)",
            "route": "\(route)",
            "status": "\(status)",
            "duration_ms": "\(String(format: "%.3f", Double(duration.nanoseconds) / 1_000_000))",
        ]
        if let tenant { metadata["tenant"] = "\(tenant.slug)" }
        if let principal = context.record.principal { metadata["principal"] = "\(principal)" }
        context.logger.info("request", metadata: metadata)
    }
}
