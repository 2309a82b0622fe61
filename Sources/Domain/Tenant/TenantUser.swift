import Foundation

/// A person who belongs to a tenant.
public struct TenantUser: Sendable, Equatable, Codable {
    public var id: UUID
    /// Lowercased, and unique within the tenant.
    public var email: String
    public var role: Role

    /// What a personal field reads as once its subject's key is gone (erased, or never brought
    /// to the database the log was replayed into).
    public static let erased = "[erased]"

    public init(id: UUID, email: String, role: Role) {
        self.id = id
        self.email = email
        self.role = role
    }
}
