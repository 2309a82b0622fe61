import Database
import Domain
import EventLog
import Foundation

/// A tenant as the catalog knows it.
public struct TenantRecord: Sendable, Equatable, Codable {
    public let id: TenantID
    public let slug: String
    public var name: String
    public var plan: Plan
    public var status: TenantStatus
    public let placement: Placement
    /// The schema or database holding the tenant's data; nil for the shared placement.
    public let location: String?
    /// The registered server holding the tenant's data; `main` is the control plane's.
    public let server: String
    public let createdAt: Date
    public var updatedAt: Date
    public var removalScheduledAt: Date?

    public init(
        id: TenantID, slug: String, name: String, plan: Plan, status: TenantStatus, placement: Placement,
        location: String?, server: String = "main", createdAt: Date, updatedAt: Date, removalScheduledAt: Date? = nil
    ) {
        self.id = id
        self.slug = slug
        self.name = name
        self.plan = plan
        self.status = status
        self.placement = placement
        self.location = location
        self.server = server
        self.createdAt = createdAt
        self.updatedAt = updatedAt
        self.removalScheduledAt = removalScheduledAt
    }

    /// Whether the tenant's users may make requests.
    public var isServing: Bool { status == .active || status == .provisioning }
}

/// Who is calling: a tenant user through one of their keys, or a platform admin.
public struct Principal: Sendable, Equatable {
    /// The tenant the key belongs to; nil for platform keys.
    public let tenant: TenantID?
    public let userID: UUID?
    public let keyID: UUID
    /// The user's role in their tenant; nil for a platform admin, who has no tenant role.
    public let role: Role?

    /// What the role is called in answers and documents: a tenant role, or `platform_admin`.
    public static let platformAdminName = "platform_admin"

    public var isPlatformAdmin: Bool { tenant == nil }

    public init(tenant: TenantID?, userID: UUID?, keyID: UUID, role: Role?) {
        self.tenant = tenant
        self.userID = userID
        self.keyID = keyID
        self.role = role
    }

    /// The actor recorded in event metadata: `user:<id>` or `platform:<key id>`.
    public var actor: String {
        if let userID { return "user:\(userID.uuidString.lowercased())" }
        return "platform:\(keyID.uuidString.lowercased())"
    }
}
