/// Whether a tenant is served.
public enum TenantStatus: String, Sendable, Codable, CaseIterable {
    /// Created; onboarding's steps (admin, sample data, settings) are not all done yet.
    case provisioning
    case active
    /// Refused service for now, with its data kept.
    case suspended
    /// Leaving: only reactivation (which cancels it) is still accepted.
    case offboarding
}
