import Domain
import Foundation
import Hummingbird
import Logging
import NIOCore
import Operations
import Tenancy

/// The context of every request, filled in as middleware learns who is asking for what.
public struct AppRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// Taken from `X-Request-ID` when well-formed, generated otherwise; echoed on the response.
    public var requestID: String = ""
    public var clientAddress: String?
    /// The tenant the request names (subdomain, path or header), not yet checked.
    public var tenantSlug: String?
    public var tenant: TenantRecord?
    public var principal: Principal?
    /// The request's `Idempotency-Key`, checked and fingerprinted, on command routes.
    public var idempotencyKey: CommandPipeline.Key?
    /// Shared with the middleware outside, which logs and counts the request.
    public let record = RequestRecord()

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.clientAddress = source.channel.remoteAddress?.ipAddress
    }

    /// Bodies larger than this are refused with 413 before they are read in full.
    public var maxUploadSize: Int { 64 * 1024 }
}

/// The context of tenant routes: it exists only once the tenant is resolved and the caller
/// authenticated as one of its users, so a handler that takes it cannot forget either check.
public struct TenantRequestContext: ChildRequestContext {
    public var coreContext: CoreRequestContextStorage
    public let tenant: TenantRecord
    public let principal: Principal
    public let requestID: String
    public let idempotencyKey: CommandPipeline.Key?

    public init(context: AppRequestContext) throws {
        guard let tenant = context.tenant, let principal = context.principal, principal.tenant == tenant.id else {
            // Unreachable behind TenantAccessMiddleware; refuse rather than serve without a tenant.
            throw Problem.internalError()
        }
        self.coreContext = context.coreContext
        self.tenant = tenant
        self.principal = principal
        self.requestID = context.requestID
        self.idempotencyKey = context.idempotencyKey
    }

    public var maxUploadSize: Int { 64 * 1024 }

    /// Throws 403 unless the caller has one of `roles`.
    public func require(_ roles: Set<Role>) throws {
        guard let role = principal.role, roles.contains(role) else { throw Problem.forbidden(role: principal.role) }
    }
}

/// The context of platform routes: a platform admin is authenticated.
public struct PlatformRequestContext: ChildRequestContext {
    public var coreContext: CoreRequestContextStorage
    public let principal: Principal
    public let requestID: String
    public let idempotencyKey: CommandPipeline.Key?

    public init(context: AppRequestContext) throws {
        guard let principal = context.principal, principal.isPlatformAdmin else { throw Problem.internalError() }
        self.coreContext = context.coreContext
        self.principal = principal
        self.requestID = context.requestID
        self.idempotencyKey = context.idempotencyKey
    }

    public var maxUploadSize: Int { 64 * 1024 }
}
