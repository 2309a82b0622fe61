import Foundation

/// The rules of a tenant's life: onboarding, plan and status changes, users and API keys.
///
/// An offboarding tenant accepts only reactivation (which cancels the offboarding) and a repeated
/// offboarding request; everything else is refused as `.removed`.
public enum Tenant: Decider {
    /// `nil` until the tenant is created.
    public typealias State = TenantState?
    public typealias Command = TenantCommand
    public typealias Event = TenantEvent

    public static let initialState: TenantState? = nil

    /// Slugs that would collide with our own hosts, paths or well-known subdomains.
    public static let reservedSlugs: Set<String> = [
        "api", "www", "admin", "app", "static", "assets", "health", "metrics", "openapi", "docs", "status",
        "mail", "ftp", "root", "system", "platform", "petstore", "internal", "auth", "login", "signup",
        "billing", "support", "help", "dev", "staging", "test",
    ]

    /// The problems with `slug`, checked exactly as given: `^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$`
    /// (a DNS label, so it works as a subdomain) and not reserved.
    public static func validateSlug(_ slug: String) -> [FieldError] {
        func isLowercaseAlphanumeric(_ byte: UInt8) -> Bool {
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
        }
        let bytes = slug.utf8
        guard (3...63).contains(bytes.count),
              let first = bytes.first, isLowercaseAlphanumeric(first),
              let last = bytes.last, isLowercaseAlphanumeric(last),
              bytes.allSatisfy({ isLowercaseAlphanumeric($0) || $0 == UInt8(ascii: "-") })
        else {
            return [FieldError(field: "slug", message: "must be 3 to 63 of a-z, 0-9 and '-', starting and ending with a letter or digit")]
        }
        if reservedSlugs.contains(slug) {
            return [FieldError(field: "slug", message: "is reserved")]
        }
        return []
    }

    public static func decide(_ command: TenantCommand, _ state: TenantState?) throws(DomainError) -> [TenantEvent] {
        switch command {
        case .create(let id, let slug, let name, let plan, let placement, let at):
            guard state == nil else { throw .alreadyExists("A tenant with this id already exists.") }
            var validation = Validation()
            if let placement, !plan.allowedPlacements.contains(placement) {
                validation.fail("placement", "the \(plan.rawValue) plan may use \(plan.allowedPlacements.map(\.rawValue).joined(separator: " or "))")
            }
            let event = TenantCreated(
                tenantID: id, slug: validation.slug(slug), name: validation.tenantName(name), plan: plan,
                placement: placement ?? plan.defaultPlacement, at: at
            )
            try validation.check()
            return [.created(event)]
        case .activate(let at):
            return try existing(state).status == .provisioning ? [.activated(TenantActivated(at: at))] : []
        case .changePlan(let plan, let at):
            let tenant = try notOffboarding(state)
            return plan == tenant.plan ? [] : [.planChanged(PlanChanged(from: tenant.plan, to: plan, at: at))]
        case .suspend(let reason, let at):
            let tenant = try notOffboarding(state)
            var validation = Validation()
            let reason = validation.optionalText(reason, field: "reason", maxLength: Validation.suspensionReasonMaxLength)
            try validation.check()
            return tenant.status == .suspended ? [] : [.suspended(TenantSuspended(reason: reason, at: at))]
        case .reactivate(let at):
            // A tenant still provisioning is activated by onboarding, not by a reactivation.
            let status = try existing(state).status
            return status == .active || status == .provisioning ? [] : [.reactivated(TenantReactivated(at: at))]
        case .addUser(let id, let email, let role, let at):
            let tenant = try notOffboarding(state)
            var validation = Validation()
            let email = validation.email(email)
            try validation.check()
            guard tenant.users[id] == nil else { throw .alreadyExists("A user with this id already exists.") }
            guard tenant.user(withEmail: email) == nil else { throw .alreadyExists("A user with this email already exists.") }
            return [.userAdded(UserAdded(userID: id, email: email, role: role, at: at))]
        case .issueApiKey(let id, let prefix, let userID, let role, let at):
            let tenant = try notOffboarding(state)
            var validation = Validation()
            let prefix = validation.apiKeyPrefix(prefix)
            try validation.check()
            guard tenant.users[userID] != nil else { throw .notFound("The user does not exist.") }
            guard tenant.apiKeys[id] == nil else { throw .alreadyExists("An API key with this id already exists.") }
            return [.apiKeyIssued(ApiKeyIssued(keyID: id, prefix: prefix, userID: userID, role: role, at: at))]
        case .revokeApiKey(let id, let at, let force):
            let tenant = try notOffboarding(state)
            guard let key = tenant.apiKeys[id] else { throw .notFound("The API key does not exist.") }
            if key.revoked { return [] }
            // Concurrent revocations of the last two admin keys cannot both pass: each appends to
            // the tenant's stream at the version it decided on, so one of them meets a conflict.
            if key.role == .admin, !force, tenant.activeAdminKeys.count == 1 {
                throw .lastAdminKey("This is the tenant's last active admin key: issue another admin key before revoking it.")
            }
            return [.apiKeyRevoked(ApiKeyRevoked(keyID: id, at: at))]
        case .requestOffboarding(let at):
            return try existing(state).status == .offboarding ? [] : [.offboardingRequested(OffboardingRequested(at: at))]
        case .eraseUser(let id, let at):
            let tenant = try notOffboarding(state)
            guard tenant.users[id] != nil else { throw .notFound("The user does not exist.") }
            let keys = tenant.apiKeys.values.filter { $0.userID == id && !$0.revoked }.sorted { $0.id.uuidString < $1.id.uuidString }
            if keys.contains(where: { $0.role == .admin }), tenant.activeAdminKeys.allSatisfy({ $0.userID == id }) {
                throw .lastAdminKey("This user holds the tenant's last active admin keys: issue an admin key to someone else before erasing them.")
            }
            return keys.map { .apiKeyRevoked(ApiKeyRevoked(keyID: $0.id, at: at)) } + [.userErased(UserErased(userID: id, at: at))]
        }
    }

    private static func existing(_ state: TenantState?) throws(DomainError) -> TenantState {
        guard let state else { throw .notFound("The tenant does not exist.") }
        return state
    }

    /// The tenant, if it still accepts ordinary commands.
    private static func notOffboarding(_ state: TenantState?) throws(DomainError) -> TenantState {
        let tenant = try existing(state)
        guard tenant.status != .offboarding else { throw .removed("The tenant is being offboarded.") }
        return tenant
    }

    public static func evolve(_ state: TenantState?, _ event: TenantEvent) -> TenantState? {
        if case .created(let created) = event {
            return TenantState(
                id: created.tenantID, slug: created.slug, name: created.name, plan: created.plan, status: .provisioning,
                placement: created.placement, createdAt: created.at
            )
        }
        // Nothing to change before creation; decide never produces such a history.
        guard var tenant = state else { return nil }
        switch event {
        case .created:
            break
        case .activated:
            tenant.status = .active
        case .planChanged(let changed):
            tenant.plan = changed.to
        case .suspended:
            tenant.status = .suspended
        case .reactivated:
            tenant.status = .active
            tenant.offboardingRequestedAt = nil
        case .userAdded(let added):
            tenant.users[added.userID] = TenantUser(id: added.userID, email: added.email, role: added.role)
        case .apiKeyIssued(let issued):
            tenant.apiKeys[issued.keyID] = ApiKeyRecord(
                id: issued.keyID, prefix: issued.prefix, userID: issued.userID, role: issued.role, revoked: false
            )
        case .apiKeyRevoked(let revoked):
            tenant.apiKeys[revoked.keyID]?.revoked = true
        case .offboardingRequested(let requested):
            tenant.status = .offboarding
            tenant.offboardingRequestedAt = requested.at
        case .userErased(let erased):
            tenant.users[erased.userID] = nil
        }
        return tenant
    }
}
