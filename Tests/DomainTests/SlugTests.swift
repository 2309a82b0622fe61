import Domain
import Testing

@Suite struct SlugTests {
    static let malformedMessage = "must be 3 to 63 of a-z, 0-9 and '-', starting and ending with a letter or digit"

    @Test(arguments: ["abc", "acme", "acme-pets", "0pets", "a1b", "a--b", String(repeating: "a", count: 63)])
    func `a well-formed slug is accepted`(slug: String) {
        #expect(Tenant.validateSlug(slug).isEmpty)
    }

    @Test(arguments: [
        "", "ab", "a", String(repeating: "a", count: 64), String(repeating: "a", count: 100), "acme.pets", "Acme", "ACME",
        "-acme", "acme-", "acme_pets", "acme pets", "café", "ac\u{0}me", "ａｃｍｅ",
    ])
    func `a malformed slug is refused`(slug: String) {
        #expect(Tenant.validateSlug(slug) == [FieldError(field: "slug", message: Self.malformedMessage)])
    }

    @Test(arguments: Tenant.reservedSlugs.sorted())
    func `a reserved slug is refused`(slug: String) {
        #expect(Tenant.validateSlug(slug) == [FieldError(field: "slug", message: "is reserved")])
    }

    @Test func `the reserved list holds the documented words`() {
        #expect(Tenant.reservedSlugs.count == 27)
        #expect(Tenant.reservedSlugs.isSuperset(of: ["api", "www", "admin", "petstore", "test", "staging", "billing"]))
    }

    @Test func `a slug containing a reserved word is not itself reserved`() {
        #expect(Tenant.validateSlug("api-shop").isEmpty)
        #expect(Tenant.validateSlug("testing").isEmpty)
    }

    @Test func `creating a tenant with a reserved slug is refused`() {
        given(Tenant.self)
            .when(.create(id: Fixture.tenantID, slug: "admin", name: "Admin", plan: .free, placement: nil, at: Fixture.start))
            .thenRejects(["slug"])
    }
}
