import Domain
import Foundation
import Testing

@Suite struct TenantTests {
    typealias F = Fixture

    static let suspended = TenantEvent.suspended(TenantSuspended(reason: "unpaid", at: Fixture.minute(3)))
    static let offboarding = TenantEvent.offboardingRequested(OffboardingRequested(at: Fixture.minute(4)))

    func create(slug: String = "acme", name: String = "Acme Pets", plan: Plan = .basic, placement: Placement? = nil) -> TenantCommand {
        .create(id: F.tenantID, slug: slug, name: name, plan: plan, placement: placement, at: F.start)
    }

    // MARK: Creating

    @Test(arguments: Plan.allCases)
    func `creating a tenant places it by its plan`(plan: Plan) {
        let state = given(Tenant.self).when(create(plan: plan)).then([F.created(plan: plan)])
        #expect(state?.status == .provisioning)
        #expect(state?.placement == plan.defaultPlacement)
    }

    // MARK: Activating

    @Test func `onboarding's end activates a provisioning tenant, once`() {
        let activated = TenantEvent.activated(TenantActivated(at: F.minute(1)))
        let state = given(Tenant.self, [F.created()]).when(.activate(at: F.minute(1))).then([activated])
        #expect(state?.status == .active)
        given(Tenant.self, [F.created(), activated]).when(.activate(at: F.minute(2))).then([])
    }

    @Test func `activation neither lifts a suspension nor cancels offboarding`() {
        let activated = TenantEvent.activated(TenantActivated(at: F.minute(1)))
        given(Tenant.self, [F.created(), activated, Self.suspended]).when(.activate(at: F.minute(5))).then([])
        given(Tenant.self, [F.created(), activated, Self.offboarding]).when(.activate(at: F.minute(5))).then([])
    }

    @Test func `a provisioning tenant is activated by onboarding, not by a reactivation`() {
        given(Tenant.self, [F.created()]).when(.reactivate(at: F.minute(1))).then([])
    }

    @Test func `each plan has the documented default placement`() {
        #expect(Plan.allCases.map(\.defaultPlacement) == [.shared, .shared, .schema, .database])
    }

    @Test func `an explicit placement overrides the plan's default`() {
        given(Tenant.self)
            .when(create(plan: .enterprise, placement: .shared))
            .then([.created(TenantCreated(tenantID: F.tenantID, slug: "acme", name: "Acme Pets", plan: .enterprise, placement: .shared, at: F.start))])
    }

    @Test func `a placement the plan may not use is refused, naming the placement`() {
        given(Tenant.self).when(create(plan: .free, placement: .schema)).thenRejects(["placement"])
        given(Tenant.self).when(create(plan: .premium, placement: .database)).thenRejects(["placement"])
    }

    @Test func `every plan may use its own default placement and the shared tables`() {
        for plan in Plan.allCases {
            #expect(plan.allowedPlacements.contains(plan.defaultPlacement) && plan.allowedPlacements.contains(.shared), "\(plan)")
        }
    }

    @Test func `the tenant name is trimmed`() {
        given(Tenant.self).when(create(name: "  Acme Pets ")).then([F.created()])
    }

    @Test func `creating a tenant that exists is refused`() {
        given(Tenant.self, [F.created()]).when(create()).thenThrows(.alreadyExists)
    }

    @Test func `a bad slug and a bad name are reported together`() {
        given(Tenant.self).when(create(slug: "Acme!", name: "")).thenRejects(["slug", "name"])
        given(Tenant.self).when(create(name: String(repeating: "n", count: 101))).thenRejects(["name"])
        given(Tenant.self).when(create(name: String(repeating: "n", count: 100))).then([
            .created(TenantCreated(tenantID: F.tenantID, slug: "acme", name: String(repeating: "n", count: 100), plan: .basic, placement: .shared, at: F.start)),
        ])
    }

    @Test(arguments: [
        TenantCommand.changePlan(.premium, at: Fixture.start), .suspend(reason: nil, at: Fixture.start), .reactivate(at: Fixture.start),
        .addUser(id: Fixture.aliceID, email: "a@b.c", role: .admin, at: Fixture.start),
        .issueApiKey(id: Fixture.keyID, prefix: "ps_x", userID: Fixture.aliceID, role: .admin, at: Fixture.start),
        .revokeApiKey(id: Fixture.keyID, at: Fixture.start), .requestOffboarding(at: Fixture.start), .activate(at: Fixture.start),
    ])
    func `commands on a tenant that was never created are answered with not found`(command: TenantCommand) {
        given(Tenant.self).when(command).thenThrows(.notFound)
    }

    // MARK: Plans and status

    @Test func `changing the plan records both plans and keeps the placement`() {
        let state = given(Tenant.self, [F.created()])
            .when(.changePlan(.enterprise, at: F.minute(1)))
            .then([.planChanged(PlanChanged(from: .basic, to: .enterprise, at: F.minute(1)))])
        #expect(state?.plan == .enterprise)
        #expect(state?.placement == .shared)
    }

    @Test func `changing to the same plan is a no-op`() {
        given(Tenant.self, [F.created()]).when(.changePlan(.basic, at: F.minute(1))).then([])
    }

    @Test func `suspending records the trimmed reason`() {
        let state = given(Tenant.self, [F.created()])
            .when(.suspend(reason: " unpaid ", at: F.minute(3)))
            .then([Self.suspended])
        #expect(state?.status == .suspended)
    }

    @Test func `a blank suspension reason means none`() {
        given(Tenant.self, [F.created()])
            .when(.suspend(reason: "  ", at: F.minute(3)))
            .then([.suspended(TenantSuspended(reason: nil, at: F.minute(3)))])
    }

    @Test func `an overlong suspension reason is refused`() {
        given(Tenant.self, [F.created()]).when(.suspend(reason: String(repeating: "r", count: 501), at: F.minute(3))).thenRejects(["reason"])
    }

    @Test func `suspending a suspended tenant is a no-op`() {
        given(Tenant.self, [F.created(), Self.suspended]).when(.suspend(reason: "again", at: F.minute(5))).then([])
    }

    @Test func `reactivating a suspended tenant records it`() {
        let state = given(Tenant.self, [F.created(), Self.suspended])
            .when(.reactivate(at: F.minute(5)))
            .then([.reactivated(TenantReactivated(at: F.minute(5)))])
        #expect(state?.status == .active)
    }

    @Test func `reactivating an active tenant is a no-op`() {
        given(Tenant.self, [F.created(), .activated(TenantActivated(at: F.minute(1)))]).when(.reactivate(at: F.minute(5))).then([])
    }

    // MARK: Users

    @Test func `adding a user lowercases the email`() {
        let state = given(Tenant.self, [F.created()])
            .when(.addUser(id: F.aliceID, email: " Alice@ACME.test ", role: .admin, at: F.minute(1)))
            .then([F.aliceAdded])
        #expect(state?.users[F.aliceID] == TenantUser(id: F.aliceID, email: "alice@acme.test", role: .admin))
    }

    @Test func `adding a second user with the same email, in any case, is refused`() {
        given(Tenant.self, [F.created(), F.aliceAdded])
            .when(.addUser(id: F.bobID, email: "ALICE@acme.test", role: .member, at: F.minute(2)))
            .thenThrows(.alreadyExists)
    }

    @Test func `adding a user whose id exists is refused`() {
        given(Tenant.self, [F.created(), F.aliceAdded])
            .when(.addUser(id: F.aliceID, email: "bob@acme.test", role: .member, at: F.minute(2)))
            .thenThrows(.alreadyExists)
    }

    @Test(arguments: [
        "", "alice", "alice@", "@acme.test", "a@b@c", "al ice@acme.test", "alice@acme\u{0}.test",
        String(repeating: "a", count: 245) + "@acme.test",
    ])
    func `a malformed email is refused`(email: String) {
        given(Tenant.self, [F.created()])
            .when(.addUser(id: F.bobID, email: email, role: .member, at: F.minute(2)))
            .thenRejects(["email"])
    }

    @Test func `an email of exactly 254 characters is accepted`() {
        let email = String(repeating: "a", count: 244) + "@acme.test"
        #expect(email.count == 254)
        given(Tenant.self, [F.created()])
            .when(.addUser(id: F.bobID, email: email, role: .member, at: F.minute(2)))
            .then([.userAdded(UserAdded(userID: F.bobID, email: email, role: .member, at: F.minute(2)))])
    }

    // MARK: API keys

    @Test func `issuing a key for a known user records it without any secret`() throws {
        let state = given(Tenant.self, [F.created(), F.aliceAdded])
            .when(.issueApiKey(id: F.keyID, prefix: "ps_abc123", userID: F.aliceID, role: .admin, at: F.minute(2)))
            .then([F.keyIssued])
        #expect(state?.apiKeys[F.keyID] == ApiKeyRecord(id: F.keyID, prefix: "ps_abc123", userID: F.aliceID, role: .admin, revoked: false))
    }

    @Test func `issuing a key for an unknown user is answered with not found`() {
        given(Tenant.self, [F.created(), F.aliceAdded])
            .when(.issueApiKey(id: F.keyID, prefix: "ps_abc123", userID: F.bobID, role: .member, at: F.minute(2)))
            .thenThrows(.notFound)
    }

    @Test func `issuing a key whose id exists is refused`() {
        given(Tenant.self, [F.created(), F.aliceAdded, F.keyIssued])
            .when(.issueApiKey(id: F.keyID, prefix: "ps_other", userID: F.aliceID, role: .member, at: F.minute(3)))
            .thenThrows(.alreadyExists)
    }

    @Test(arguments: ["", "has space", String(repeating: "p", count: 33), "pré"])
    func `a malformed key prefix is refused`(prefix: String) {
        given(Tenant.self, [F.created(), F.aliceAdded])
            .when(.issueApiKey(id: F.keyID, prefix: prefix, userID: F.aliceID, role: .admin, at: F.minute(2)))
            .thenRejects(["prefix"])
    }

    static let secondAdminKey = TenantEvent.apiKeyIssued(
        ApiKeyIssued(keyID: Fixture.id(301), prefix: "ps_def456", userID: Fixture.aliceID, role: .admin, at: Fixture.minute(2)))
    static let memberKey = TenantEvent.apiKeyIssued(
        ApiKeyIssued(keyID: Fixture.id(302), prefix: "ps_ghi789", userID: Fixture.aliceID, role: .member, at: Fixture.minute(2)))

    @Test func `revoking a key records it`() {
        let state = given(Tenant.self, [F.created(), F.aliceAdded, F.keyIssued, Self.secondAdminKey])
            .when(.revokeApiKey(id: F.keyID, at: F.minute(3)))
            .then([.apiKeyRevoked(ApiKeyRevoked(keyID: F.keyID, at: F.minute(3)))])
        #expect(state?.apiKeys[F.keyID]?.revoked == true)
        #expect(state?.activeAdminKeys.map(\.id) == [F.id(301)])
    }

    @Test func `the tenant's last active admin key cannot be revoked, whatever other keys remain`() {
        given(Tenant.self, [F.created(), F.aliceAdded, F.keyIssued, Self.memberKey])
            .when(.revokeApiKey(id: F.keyID, at: F.minute(3)))
            .thenThrows(.lastAdminKey)
        let secondRevoked = TenantEvent.apiKeyRevoked(ApiKeyRevoked(keyID: F.id(301), at: F.minute(3)))
        given(Tenant.self, [F.created(), F.aliceAdded, F.keyIssued, Self.secondAdminKey, secondRevoked])
            .when(.revokeApiKey(id: F.keyID, at: F.minute(4)))
            .thenThrows(.lastAdminKey)
    }

    @Test func `a member key goes even when one admin key is left, and force revokes the last admin key`() {
        given(Tenant.self, [F.created(), F.aliceAdded, F.keyIssued, Self.memberKey])
            .when(.revokeApiKey(id: F.id(302), at: F.minute(3)))
            .then([.apiKeyRevoked(ApiKeyRevoked(keyID: F.id(302), at: F.minute(3)))])
        let state = given(Tenant.self, [F.created(), F.aliceAdded, F.keyIssued])
            .when(.revokeApiKey(id: F.keyID, at: F.minute(3), force: true))
            .then([.apiKeyRevoked(ApiKeyRevoked(keyID: F.keyID, at: F.minute(3)))])
        #expect(state?.activeAdminKeys.isEmpty == true)
    }

    // MARK: Erasing a person

    static let bobAdded = TenantEvent.userAdded(UserAdded(userID: Fixture.bobID, email: "bob@acme.test", role: .member, at: Fixture.minute(2)))
    static let bobKey = TenantEvent.apiKeyIssued(
        ApiKeyIssued(keyID: Fixture.id(303), prefix: "ps_bob001", userID: Fixture.bobID, role: .member, at: Fixture.minute(2)))
    static let bobOldKey = TenantEvent.apiKeyIssued(
        ApiKeyIssued(keyID: Fixture.id(304), prefix: "ps_bob002", userID: Fixture.bobID, role: .member, at: Fixture.minute(2)))
    static let bobOldKeyRevoked = TenantEvent.apiKeyRevoked(ApiKeyRevoked(keyID: Fixture.id(304), at: Fixture.minute(3)))

    @Test func `erasing a person revokes their working keys, then forgets them and their email`() {
        let state = given(Tenant.self, [F.created(), F.aliceAdded, F.keyIssued, Self.bobAdded, Self.bobKey, Self.bobOldKey, Self.bobOldKeyRevoked])
            .when(.eraseUser(id: F.bobID, at: F.minute(5)))
            .then([
                .apiKeyRevoked(ApiKeyRevoked(keyID: F.id(303), at: F.minute(5))),
                .userErased(UserErased(userID: F.bobID, at: F.minute(5))),
            ])
        #expect(state?.users[F.bobID] == nil)
        #expect(state?.user(withEmail: "bob@acme.test") == nil, "the email may be used again")
        #expect(state?.activeAdminKeys.map(\.id) == [F.keyID], "other people's keys are untouched")
    }

    @Test func `an erased person gets no key, and erasing them again or an unknown person is not found`() {
        let erased = TenantEvent.userErased(UserErased(userID: F.bobID, at: F.minute(5)))
        given(Tenant.self, [F.created(), F.aliceAdded, Self.bobAdded, erased])
            .when(.issueApiKey(id: F.id(305), prefix: "ps_bob003", userID: F.bobID, role: .member, at: F.minute(6)))
            .thenThrows(.notFound)
        given(Tenant.self, [F.created(), F.aliceAdded, Self.bobAdded, erased]).when(.eraseUser(id: F.bobID, at: F.minute(6))).thenThrows(.notFound)
        given(Tenant.self, [F.created(), F.aliceAdded]).when(.eraseUser(id: F.bobID, at: F.minute(6))).thenThrows(.notFound)
    }

    @Test func `the person holding the tenant's last admin keys cannot be erased; with another admin they can`() {
        given(Tenant.self, [F.created(), F.aliceAdded, F.keyIssued, Self.secondAdminKey, Self.bobAdded, Self.bobKey])
            .when(.eraseUser(id: F.aliceID, at: F.minute(5)))
            .thenThrows(.lastAdminKey)
        let bobAdmin = TenantEvent.apiKeyIssued(
            ApiKeyIssued(keyID: F.id(306), prefix: "ps_bob004", userID: F.bobID, role: .admin, at: F.minute(4)))
        given(Tenant.self, [F.created(), F.aliceAdded, F.keyIssued, Self.bobAdded, bobAdmin])
            .when(.eraseUser(id: F.aliceID, at: F.minute(5)))
            .then([
                .apiKeyRevoked(ApiKeyRevoked(keyID: F.keyID, at: F.minute(5))),
                .userErased(UserErased(userID: F.aliceID, at: F.minute(5))),
            ])
    }

    @Test func `an offboarding tenant erases nobody`() {
        given(Tenant.self, [F.created(), F.aliceAdded, Self.bobAdded, Self.offboarding]).when(.eraseUser(id: F.bobID, at: F.minute(5))).thenThrows(.removed)
    }

    @Test func `revoking an unknown key is answered with not found`() {
        given(Tenant.self, [F.created(), F.aliceAdded]).when(.revokeApiKey(id: F.keyID, at: F.minute(3))).thenThrows(.notFound)
    }

    @Test func `revoking a revoked key is a no-op`() {
        let revoked = TenantEvent.apiKeyRevoked(ApiKeyRevoked(keyID: F.keyID, at: F.minute(3)))
        given(Tenant.self, [F.created(), F.aliceAdded, F.keyIssued, revoked]).when(.revokeApiKey(id: F.keyID, at: F.minute(4))).then([])
    }

    // MARK: Offboarding

    @Test func `requesting offboarding records when`() {
        let state = given(Tenant.self, [F.created()])
            .when(.requestOffboarding(at: F.minute(4)))
            .then([Self.offboarding])
        #expect(state?.status == .offboarding)
        #expect(state?.offboardingRequestedAt == F.minute(4))
    }

    @Test func `a suspended tenant can still ask to leave`() {
        given(Tenant.self, [F.created(), Self.suspended]).when(.requestOffboarding(at: F.minute(4))).then([Self.offboarding])
    }

    @Test func `requesting offboarding twice is a no-op`() {
        given(Tenant.self, [F.created(), Self.offboarding]).when(.requestOffboarding(at: F.minute(5))).then([])
    }

    @Test(arguments: [
        TenantCommand.changePlan(.premium, at: Fixture.minute(5)), .suspend(reason: nil, at: Fixture.minute(5)),
        .addUser(id: Fixture.bobID, email: "bob@acme.test", role: .member, at: Fixture.minute(5)),
        .issueApiKey(id: Fixture.id(301), prefix: "ps_new", userID: Fixture.aliceID, role: .member, at: Fixture.minute(5)),
        .revokeApiKey(id: Fixture.keyID, at: Fixture.minute(5)),
    ])
    func `an offboarding tenant refuses everything but reactivation`(command: TenantCommand) {
        given(Tenant.self, [F.created(), F.aliceAdded, F.keyIssued, Self.offboarding]).when(command).thenThrows(.removed)
    }

    @Test func `reactivating cancels offboarding`() {
        let state = given(Tenant.self, [F.created(), Self.offboarding])
            .when(.reactivate(at: F.minute(5)))
            .then([.reactivated(TenantReactivated(at: F.minute(5)))])
        #expect(state?.status == .active)
        #expect(state?.offboardingRequestedAt == nil)
    }

    // MARK: Folding

    @Test func `folding a tenant's decided events reproduces its state`() throws {
        var events: [TenantEvent] = []
        let commands: [TenantCommand] = [
            create(plan: .premium),
            .addUser(id: F.aliceID, email: "alice@acme.test", role: .admin, at: F.minute(1)),
            .addUser(id: F.bobID, email: "bob@acme.test", role: .auditor, at: F.minute(1)),
            .issueApiKey(id: F.keyID, prefix: "ps_abc123", userID: F.bobID, role: .auditor, at: F.minute(2)),
            .revokeApiKey(id: F.keyID, at: F.minute(3)),
            .changePlan(.enterprise, at: F.minute(4)),
            .suspend(reason: nil, at: F.minute(5)),
            .reactivate(at: F.minute(6)),
            .reactivate(at: F.minute(7)),
        ]
        for command in commands {
            events += try Tenant.decide(command, Tenant.fold(events))
        }
        #expect(events.map(\.eventType) == [
            "TenantCreated", "UserAdded", "UserAdded", "ApiKeyIssued", "ApiKeyRevoked", "PlanChanged", "TenantSuspended", "TenantReactivated",
        ])
        #expect(Tenant.fold(events) == TenantState(
            id: F.tenantID, slug: "acme", name: "Acme Pets", plan: .enterprise, status: .active, placement: .schema, createdAt: F.start,
            users: [
                F.aliceID: TenantUser(id: F.aliceID, email: "alice@acme.test", role: .admin),
                F.bobID: TenantUser(id: F.bobID, email: "bob@acme.test", role: .auditor),
            ],
            apiKeys: [F.keyID: ApiKeyRecord(id: F.keyID, prefix: "ps_abc123", userID: F.bobID, role: .auditor, revoked: true)]
        ))
    }

    @Test func `events before a creation leave no tenant, because evolve is total`() {
        #expect(Tenant.fold([F.aliceAdded, Self.suspended]) == nil)
    }
}
