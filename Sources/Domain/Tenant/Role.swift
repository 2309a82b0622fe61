/// What a tenant's user (and each of their API keys) may do inside the tenant.
public enum Role: String, Sendable, Codable, CaseIterable {
    case admin, member, auditor
}
