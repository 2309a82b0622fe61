import Foundation
import Testing
@testable import Tenancy

@Suite struct ResolverTests {
    let resolver = TenantResolver()

    @Test(arguments: [
        ("acme-pets.petstore.localhost", "acme-pets"), ("ACME-PETS.petstore.localhost", "acme-pets"),
        ("acme-pets.petstore.localhost:8080", "acme-pets"), ("acme-pets.petstore.localhost.", "acme-pets"),
        ("acme-pets.petstore.localhost.:8080", "acme-pets"),
    ])
    func `a tenant subdomain is found with any case, port or trailing dot`(host: String, slug: String) throws {
        #expect(try resolver.resolve(host: host, path: "/api/pets", header: nil).slug == slug)
    }

    @Test(arguments: ["petstore.localhost", "localhost:8080", "127.0.0.1:8080", "[::1]:8080", "example.com", "10.1.2.3"])
    func `hosts outside the base domain, the base domain itself and IP addresses name no tenant`(host: String) throws {
        #expect(try resolver.resolve(host: host, path: "/api/pets", header: nil).slug == nil)
    }

    @Test(arguments: [
        "a.b.petstore.localhost", "-acme.petstore.localhost", "acme_pets.petstore.localhost", "ac.petstore.localhost",
        String(repeating: "a", count: 64) + ".petstore.localhost", "acme.petstore.localhost:http", "acme.petstore.localhost:123456",
        "ácme.petstore.localhost", "acme pets.petstore.localhost", "[::1",
    ])
    func `malformed hosts and subdomains are refused`(host: String) {
        #expect(throws: TenantResolver.Failure.self) { try resolver.resolve(host: host, path: "/api/pets", header: nil) }
    }

    @Test(arguments: ["acme.pets", "Acme", "-acme", "acme-", "ac", String(repeating: "a", count: 64), "ácme", "acme pets", "acme/pets", "", "🐶🐶🐶"])
    func `malformed slugs in the header or the path are refused`(slug: String) {
        #expect(throws: TenantResolver.Failure.self) { try resolver.resolve(host: nil, path: "/api/pets", header: slug) }
        if !slug.isEmpty && !slug.contains("/") {
            #expect(throws: TenantResolver.Failure.self) { try resolver.resolve(host: nil, path: "/\(slug)/api/pets", header: nil) }
        }
    }

    @Test func `the path prefix is stripped and the rest of the path kept`() throws {
        let resolution = try resolver.resolve(host: "localhost", path: "/acme-pets/api/pets/123", header: nil)
        #expect(resolution == .init(slug: "acme-pets", path: "/api/pets/123"))
        #expect(try resolver.resolve(host: nil, path: "/health/live", header: nil) == .init(slug: nil, path: "/health/live"))
        #expect(try resolver.resolve(host: nil, path: "/api/pets", header: nil) == .init(slug: nil, path: "/api/pets"))
    }

    @Test func `sources that agree are fine and sources that disagree are refused`() throws {
        #expect(try resolver.resolve(host: "acme.petstore.localhost", path: "/acme/api/pets", header: "acme").slug == "acme")
        #expect(throws: TenantResolver.Failure.conflicting) {
            try resolver.resolve(host: "acme.petstore.localhost", path: "/api/pets", header: "globex")
        }
        #expect(throws: TenantResolver.Failure.conflicting) { try resolver.resolve(host: nil, path: "/acme/api/pets", header: "globex") }
    }

    @Test func `a switched-off strategy is ignored and the base domain is configurable`() throws {
        let headerOnly = TenantResolver(strategies: [.header], baseDomain: "shop.example")
        #expect(try headerOnly.resolve(host: "acme.shop.example", path: "/acme/api/pets", header: nil).slug == nil)
        let subdomainOnly = TenantResolver(strategies: [.subdomain], baseDomain: "shop.example")
        #expect(try subdomainOnly.resolve(host: "acme.shop.example", path: "/api/pets", header: "globex").slug == "acme")
    }

    @Test func `keys of the wrong form are not keys`() {
        let key = APIKey.generate(.tenant)
        #expect(APIKey(presented: key.value) == key)
        #expect(APIKey(presented: String(key.value.dropLast())) == nil)
        #expect(APIKey(presented: key.value + "x") == nil)
        #expect(APIKey(presented: key.value.replacingOccurrences(of: "psk_", with: "xyz_")) == nil)
        #expect(APIKey(presented: String(repeating: "a", count: 10_000)) == nil)
        #expect(APIKey(presented: "") == nil)
        #expect(!key.description.contains(String(key.value.suffix(20))), "the secret is never printed")
        #expect(APIKey.constantTimeEquals([1, 2, 3], [1, 2, 3]))
        #expect(!APIKey.constantTimeEquals([1, 2, 3], [1, 2, 4]))
        #expect(!APIKey.constantTimeEquals([1, 2, 3], [1, 2]))
    }
}
