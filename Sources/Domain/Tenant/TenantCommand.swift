import Foundation

/// What the platform or a tenant admin can ask of a tenant.
public enum TenantCommand: Sendable, Equatable {
    /// `placement` nil means the plan's default.
    case create(id: UUID, slug: String, name: String, plan: Plan, placement: Placement?, at: Date)
    /// Onboarding is done: a tenant still provisioning becomes active; otherwise nothing changes.
    case activate(at: Date)
    case changePlan(Plan, at: Date)
    case suspend(reason: String?, at: Date)
    /// Ends a suspension or cancels offboarding.
    case reactivate(at: Date)
    case addUser(id: UUID, email: String, role: Role, at: Date)
    /// `prefix` is the visible start of a key whose secret `Tenancy` generated and keeps.
    case issueApiKey(id: UUID, prefix: String, userID: UUID, role: Role, at: Date)
    /// Refused for the tenant's last active admin key (nobody could manage the tenant after it)
    /// unless `force`: an operator may mean to lock a tenant's admins out.
    case revokeApiKey(id: UUID, at: Date, force: Bool = false)
    case requestOffboarding(at: Date)
    /// Forgets a person (GDPR art. 17): their keys are revoked and their personal data erased.
    /// Refused when they hold the tenant's last active admin keys.
    case eraseUser(id: UUID, at: Date)
}
