import Domain
import Foundation
import HTTPTypes
import Hummingbird
import Tenancy

/// An RFC 9457 problem detail, the body of every error response.
///
/// `type` is a stable URI per kind of problem; clients branch on it, not on `title` or `detail`.
public struct Problem: Error, HTTPResponseError, Sendable, Equatable {
    public struct FieldError: Codable, Sendable, Equatable {
        public let field: String
        public let message: String

        public init(field: String, message: String) {
            self.field = field
            self.message = message
        }
    }

    public var type: String
    public var title: String
    public var status: HTTPResponse.Status
    public var detail: String?
    public var errors: [FieldError]?
    /// For `quota-exceeded`: the name of the `RateLimit-Policy` entry that refused the request.
    public var policy: String?
    public var headers: HTTPFields

    public init(
        type: String, title: String, status: HTTPResponse.Status, detail: String? = nil,
        errors: [FieldError]? = nil, policy: String? = nil, headers: HTTPFields = [:]
    ) {
        self.type = type
        self.title = title
        self.status = status
        self.detail = detail
        self.errors = errors
        self.policy = policy
        self.headers = headers
    }

    static let typeBase = "https://petstore.dev/problems/"

    public static func notFound(_ detail: String = "The requested resource does not exist.") -> Problem {
        Problem(type: typeBase + "not-found", title: "Not Found", status: .notFound, detail: detail)
    }

    public static func badRequest(_ detail: String, errors: [FieldError]? = nil) -> Problem {
        Problem(type: typeBase + "bad-request", title: "Bad Request", status: .badRequest, detail: detail, errors: errors)
    }

    /// Missing, malformed, unknown or revoked key: the same answer for each, so a caller cannot
    /// tell which (nor whether the tenant exists).
    public static func unauthorized() -> Problem {
        Problem(type: typeBase + "unauthorized", title: "Unauthorized", status: .unauthorized,
                detail: "A valid API key is required: send Authorization: Bearer <key>.",
                headers: [.wwwAuthenticate: "Bearer realm=\"petstore\""])
    }

    public static func forbidden(role: Role?) -> Problem {
        Problem(type: typeBase + "forbidden", title: "Forbidden", status: .forbidden,
                detail: "The \(role?.rawValue ?? Principal.platformAdminName) role may not do this.")
    }

    public static func tenantSuspended() -> Problem {
        Problem(type: typeBase + "tenant-suspended", title: "Tenant Suspended", status: .forbidden,
                detail: "This tenant is suspended; its data cannot be used until it is reactivated.")
    }

    public static func validation(_ detail: String, errors: [FieldError]) -> Problem {
        Problem(type: typeBase + "validation", title: "Unprocessable Content", status: .unprocessableContent, detail: detail, errors: errors)
    }

    public static func conflict(_ detail: String) -> Problem {
        Problem(type: typeBase + "conflict", title: "Conflict", status: .conflict, detail: detail)
    }

    /// Revoking this key would lock the tenant's admins out (nobody could issue keys again).
    public static func lastAdminKey(_ detail: String) -> Problem {
        Problem(type: typeBase + "last-admin-key", title: "Conflict", status: .conflict, detail: detail)
    }

    public static func methodNotAllowed() -> Problem {
        Problem(type: typeBase + "method-not-allowed", title: "Method Not Allowed", status: .methodNotAllowed,
                detail: "This resource does not support that method.")
    }

    public static func serviceUnavailable(_ detail: String) -> Problem {
        Problem(type: typeBase + "service-unavailable", title: "Service Unavailable", status: .serviceUnavailable, detail: detail)
    }

    public static func quotaExceeded(plan: String, quota: RateLimits.Quota, policy: RateLimiter.Policy, retryAfter: Int) -> Problem {
        let (name, detail) = switch policy {
        case .quota:
            (quota.policyName, "The \(plan) plan's quota of \(quota.limit) requests per \(quota.period) s is spent for this window; "
                + "it is whole again in \(retryAfter) s.")
        case .burst:
            (RateLimits.Quota.burstPolicyName, "Too many requests at once: the \(plan) plan allows bursts of \(quota.burst) requests per "
                + "\(quota.burstWindow) s; try again in \(retryAfter) s.")
        }
        return Problem(type: typeBase + "quota-exceeded", title: "Too Many Requests", status: .tooManyRequests, detail: detail,
                       policy: name, headers: [.retryAfter: "\(retryAfter)"])
    }

    public static func internalError() -> Problem {
        Problem(type: typeBase + "internal-error", title: "Internal Server Error", status: .internalServerError,
                detail: "The server could not complete the request. It has been logged.")
    }

    private struct Body: Encodable {
        let type: String
        let title: String
        let status: Int
        let detail: String?
        let errors: [FieldError]?
        let policy: String?
    }

    /// The JSON body; keys sorted so equal problems are byte-identical.
    public var body: ByteBuffer {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let data = (try? encoder.encode(Body(type: type, title: title, status: status.code, detail: detail, errors: errors, policy: policy))) ?? Data()
        return ByteBuffer(bytes: data)
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        var headers = self.headers
        headers[.contentType] = "application/problem+json"
        return Response(status: status, headers: headers, body: .init(byteBuffer: body))
    }
}
