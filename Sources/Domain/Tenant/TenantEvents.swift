import Foundation

// Property names are camelCase and the event log writes them snake_case. Names ending in "ID"
// get explicit coding keys: snake_case decoding turns "user_id" into "userId", never "userID".

/// A tenant was onboarded.
public struct TenantCreated: Sendable, Equatable, Codable {
    public static let eventType = "TenantCreated"
    public static let schemaVersion = 1

    public let tenantID: UUID
    public let slug: String
    public let name: String
    public let plan: Plan
    public let placement: Placement
    public let at: Date

    public init(tenantID: UUID, slug: String, name: String, plan: Plan, placement: Placement, at: Date) {
        self.tenantID = tenantID
        self.slug = slug
        self.name = name
        self.plan = plan
        self.placement = placement
        self.at = at
    }

    enum CodingKeys: String, CodingKey {
        case tenantID = "tenantId", slug, name, plan, placement, at
    }
}

/// A tenant moved to another plan.
public struct PlanChanged: Sendable, Equatable, Codable {
    public static let eventType = "PlanChanged"
    public static let schemaVersion = 1

    public let from: Plan
    public let to: Plan
    public let at: Date

    public init(from: Plan, to: Plan, at: Date) {
        self.from = from
        self.to = to
        self.at = at
    }
}

/// A tenant stopped being served.
public struct TenantSuspended: Sendable, Equatable, Codable {
    public static let eventType = "TenantSuspended"
    public static let schemaVersion = 1

    public let reason: String?
    public let at: Date

    public init(reason: String?, at: Date) {
        self.reason = reason
        self.at = at
    }
}

/// Onboarding finished: the tenant is served.
public struct TenantActivated: Sendable, Equatable, Codable {
    public static let eventType = "TenantActivated"
    public static let schemaVersion = 1

    public let at: Date

    public init(at: Date) {
        self.at = at
    }
}

/// A suspended or offboarding tenant is active again.
public struct TenantReactivated: Sendable, Equatable, Codable {
    public static let eventType = "TenantReactivated"
    public static let schemaVersion = 1

    public let at: Date

    public init(at: Date) {
        self.at = at
    }
}

/// A person joined a tenant.
public struct UserAdded: Sendable, Equatable, Codable {
    public static let eventType = "UserAdded"
    public static let schemaVersion = 1

    public let userID: UUID
    public let email: String
    public let role: Role
    public let at: Date

    public init(userID: UUID, email: String, role: Role, at: Date) {
        self.userID = userID
        self.email = email
        self.role = role
        self.at = at
    }

    enum CodingKeys: String, CodingKey {
        case userID = "userId", email, role, at
    }
}

/// An API key was issued. Deliberately without the secret or its hash: the log is readable by
/// auditors and kept forever.
public struct ApiKeyIssued: Sendable, Equatable, Codable {
    public static let eventType = "ApiKeyIssued"
    public static let schemaVersion = 1

    public let keyID: UUID
    public let prefix: String
    public let userID: UUID
    public let role: Role
    public let at: Date

    public init(keyID: UUID, prefix: String, userID: UUID, role: Role, at: Date) {
        self.keyID = keyID
        self.prefix = prefix
        self.userID = userID
        self.role = role
        self.at = at
    }

    enum CodingKeys: String, CodingKey {
        case keyID = "keyId", prefix, userID = "userId", role, at
    }
}

/// An API key stopped working.
public struct ApiKeyRevoked: Sendable, Equatable, Codable {
    public static let eventType = "ApiKeyRevoked"
    public static let schemaVersion = 1

    public let keyID: UUID
    public let at: Date

    public init(keyID: UUID, at: Date) {
        self.keyID = keyID
        self.at = at
    }

    enum CodingKeys: String, CodingKey {
        case keyID = "keyId", at
    }
}

/// A tenant asked to leave; its data is kept until the offboarding completes elsewhere.
public struct OffboardingRequested: Sendable, Equatable, Codable {
    public static let eventType = "OffboardingRequested"
    public static let schemaVersion = 1

    public let at: Date

    public init(at: Date) {
        self.at = at
    }
}

/// A person was forgotten. Their personal data in earlier events is sealed with a key of theirs,
/// destroyed with this event: the sealed bytes stay in the log, and nothing can read them again.
public struct UserErased: Sendable, Equatable, Codable {
    public static let eventType = "UserErased"
    public static let schemaVersion = 1

    public let userID: UUID
    public let at: Date

    public init(userID: UUID, at: Date) {
        self.userID = userID
        self.at = at
    }

    enum CodingKeys: String, CodingKey {
        case userID = "userId", at
    }
}

/// Everything that can happen to a tenant.
public enum TenantEvent: Sendable, Equatable {
    case created(TenantCreated)
    case activated(TenantActivated)
    case planChanged(PlanChanged)
    case suspended(TenantSuspended)
    case reactivated(TenantReactivated)
    case userAdded(UserAdded)
    case apiKeyIssued(ApiKeyIssued)
    case apiKeyRevoked(ApiKeyRevoked)
    case offboardingRequested(OffboardingRequested)
    case userErased(UserErased)

    /// The name the event log stores this event under.
    public var eventType: String {
        switch self {
        case .created: TenantCreated.eventType
        case .activated: TenantActivated.eventType
        case .planChanged: PlanChanged.eventType
        case .suspended: TenantSuspended.eventType
        case .reactivated: TenantReactivated.eventType
        case .userAdded: UserAdded.eventType
        case .apiKeyIssued: ApiKeyIssued.eventType
        case .apiKeyRevoked: ApiKeyRevoked.eventType
        case .offboardingRequested: OffboardingRequested.eventType
        case .userErased: UserErased.eventType
        }
    }
}
