import Foundation

/// What the domain knows of an API key. The secret and its hash live only in `Tenancy`, so
/// they never reach an event.
public struct ApiKeyRecord: Sendable, Equatable, Codable {
    public var id: UUID
    /// The visible start of the key, so people can tell their keys apart.
    public var prefix: String
    public var userID: UUID
    public var role: Role
    public var revoked: Bool

    public init(id: UUID, prefix: String, userID: UUID, role: Role, revoked: Bool) {
        self.id = id
        self.prefix = prefix
        self.userID = userID
        self.role = role
        self.revoked = revoked
    }
}
