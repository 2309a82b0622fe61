import HTTPTypes
import Hummingbird
import Operations
import Tenancy

/// Spends a request of the tenant's quota and burst limit and reports both on every tenant
/// response, errors included. It sits behind `TenantAccessMiddleware`, so a request that fails
/// authentication or names another tenant never reaches it and cannot spend that tenant's quota.
struct RateLimitMiddleware: RouterMiddleware {
    typealias Context = AppRequestContext

    let limiter: RateLimiter
    let ledger: RateLimitLedger?
    let metrics: AppMetrics?
    /// Answers errors here already, so the quota headers go on them too.
    let problems: ProblemMiddleware<AppRequestContext>

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let tenant = context.tenant else { return try await next(request, context) }
        var fields = HTTPFields()
        switch await limiter.take(tenant) {
        case .allowed(let state):
            fields = Self.fields(state)
        case .limited(let state, let policy, let retryAfter):
            metrics?.rateLimited(tenant: tenant.id, slug: tenant.slug)
            ledger?.record(tenant.id)
            context.record.rateLimited = true
            var response = try Problem.quotaExceeded(plan: state.plan, quota: state.quota, policy: policy, retryAfter: retryAfter)
                .response(from: request, context: context)
            response.headers.append(contentsOf: Self.fields(state))
            return response
        case .unavailable(let admitted, let quota, let plan):
            fields = Self.policyFields(plan: plan, quota: quota)
            guard admitted else {
                var response = try Problem.serviceUnavailable("The rate limiter cannot be reached; try again shortly.")
                    .response(from: request, context: context)
                response.headers[.retryAfter] = "1"
                response.headers.append(contentsOf: fields)
                return response
            }
        }
        var response: Response
        do {
            response = try await next(request, context)
        } catch {
            response = try problems.response(for: error, request: request, context: context)
        }
        response.headers.append(contentsOf: fields)
        return response
    }

    /// The de facto `X-RateLimit-*` trio for the quota (Reset as a Unix time, as GitHub sends
    /// it) and the IETF fields of draft-ietf-httpapi-ratelimit-headers: both policies, and the
    /// state of the one closest to exhaustion (`t` in seconds from now).
    static func fields(_ state: RateLimiter.State) -> HTTPFields {
        var fields = policyFields(plan: state.plan, quota: state.quota)
        fields[.xRateLimitRemaining] = "\(state.remaining)"
        fields[.xRateLimitReset] = "\(state.resetAt)"
        let closest = closestToExhaustion(state)
        fields[.rateLimit] = "\"\(closest.name)\";r=\(closest.remaining);t=\(closest.reset)"
        return fields
    }

    /// The policy with the smaller share of its quota left; the quota on a tie, since its wait is
    /// the longer.
    static func closestToExhaustion(_ state: RateLimiter.State) -> (name: String, remaining: Int, reset: Int) {
        let quota = state.quota
        // remaining / limit ≤ burstRemaining / burst, without division.
        if state.remaining * quota.burst <= state.burstRemaining * quota.limit {
            return (quota.policyName, state.remaining, state.reset)
        }
        return (RateLimits.Quota.burstPolicyName, state.burstRemaining, state.burstReset)
    }

    static func policyFields(plan: String, quota: RateLimits.Quota) -> HTTPFields {
        [.xRateLimitLimit: "\(quota.limit)",
         .rateLimitPolicy: "\"\(quota.policyName)\";q=\(quota.limit);w=\(quota.period), \"\(RateLimits.Quota.burstPolicyName)\";q=\(quota.burst);w=\(quota.burstWindow)"]
    }
}

extension HTTPField.Name {
    static let xRateLimitLimit = HTTPField.Name("X-RateLimit-Limit")!
    static let xRateLimitRemaining = HTTPField.Name("X-RateLimit-Remaining")!
    static let xRateLimitReset = HTTPField.Name("X-RateLimit-Reset")!
    static let rateLimit = HTTPField.Name("RateLimit")!
    static let rateLimitPolicy = HTTPField.Name("RateLimit-Policy")!
}
