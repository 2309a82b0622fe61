import Foundation

/// A tenant as its events describe it.
public struct TenantState: Sendable, Equatable, Codable {
    public var id: UUID
    public var slug: String
    public var name: String
    public var plan: Plan
    public var status: TenantStatus
    /// Chosen at creation; a plan change does not move data.
    public var placement: Placement
    public var createdAt: Date
    public var users: [UUID: TenantUser]
    public var apiKeys: [UUID: ApiKeyRecord]
    public var offboardingRequestedAt: Date?

    public init(
        id: UUID, slug: String, name: String, plan: Plan, status: TenantStatus, placement: Placement,
        createdAt: Date, users: [UUID: TenantUser] = [:], apiKeys: [UUID: ApiKeyRecord] = [:],
        offboardingRequestedAt: Date? = nil
    ) {
        self.id = id
        self.slug = slug
        self.name = name
        self.plan = plan
        self.status = status
        self.placement = placement
        self.createdAt = createdAt
        self.users = users
        self.apiKeys = apiKeys
        self.offboardingRequestedAt = offboardingRequestedAt
    }

    /// The user with this (already lowercased) email, if any.
    public func user(withEmail email: String) -> TenantUser? {
        users.values.first { $0.email == email }
    }

    /// The admin keys that still work: without one, nobody can manage the tenant's users and keys.
    public var activeAdminKeys: [ApiKeyRecord] {
        apiKeys.values.filter { $0.role == .admin && !$0.revoked }
    }
}
