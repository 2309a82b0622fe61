/// What a tenant pays for; it sets rate limits and the default placement.
public enum Plan: String, Sendable, Codable, CaseIterable {
    case free, basic, premium, enterprise

    /// Where a new tenant on this plan lives unless onboarding says otherwise: the more a tenant
    /// pays, the more isolated its data.
    public var defaultPlacement: Placement {
        switch self {
        case .free, .basic: .shared
        case .premium: .schema
        case .enterprise: .database
        }
    }

    /// The placements a tenant on this plan may be onboarded with: a schema of its own from
    /// basic up, a database of its own on enterprise.
    public var allowedPlacements: [Placement] {
        switch self {
        case .free: [.shared]
        case .basic, .premium: [.shared, .schema]
        case .enterprise: [.shared, .schema, .database]
        }
    }
}
