import Database
import NIOCore
import Operations
import Testing

/// The bounds of the pages of the pets list a server holds: bytes, and age.
@Suite struct PetPageCacheTests {
    func key(_ tenant: TenantID, after: Int64 = 0) -> PetPageCache.Key {
        PetPageCache.Key(tenant: tenant, after: after, species: nil, limit: 100)
    }

    @Test func `the pages held stay within the budget, the oldest dropped first`() {
        let cache = PetPageCache(budget: 10_000)
        let tenant = TenantID()
        let items = ByteBuffer(repeating: UInt8(ascii: "x"), count: 2_000)
        for after in 0..<8 {
            cache.store(key(tenant, after: Int64(after)), validator: "v\(after)", items: items, lastSeq: nil, more: false)
            #expect(cache.bytes <= cache.budget)
        }
        #expect(cache.page(for: key(tenant, after: 0)) == nil, "the oldest went first")
        #expect(cache.page(for: key(tenant, after: 7))?.validator == "v7")
        #expect(cache.page(for: key(TenantID(), after: 7)) == nil, "another tenant holds nothing of it")
        // Replacing a page counts its bytes once.
        let held = cache.bytes
        cache.store(key(tenant, after: 7), validator: "w7", items: items, lastSeq: nil, more: false)
        #expect(cache.bytes == held)
        // A page too large for a quarter of the budget is not held at all.
        cache.store(key(tenant, after: 99), validator: "big", items: ByteBuffer(repeating: 0, count: 5_000), lastSeq: nil, more: false)
        #expect(cache.page(for: key(tenant, after: 99)) == nil)
    }

    @Test func `a page past its lifetime is not served, and goes when another is stored`() async throws {
        let cache = PetPageCache(budget: 1 << 20, lifetime: .milliseconds(100))
        let tenant = TenantID()
        cache.store(key(tenant), validator: "v", items: ByteBuffer(string: "[]"), lastSeq: nil, more: false)
        cache.store(key(tenant, after: 1), validator: "v", items: ByteBuffer(string: "[]"), lastSeq: nil, more: false)
        #expect(cache.page(for: key(tenant)) != nil)
        try await Task.sleep(for: .milliseconds(150))
        #expect(cache.page(for: key(tenant)) == nil)
        cache.store(key(tenant, after: 2), validator: "v", items: ByteBuffer(string: "[]"), lastSeq: nil, more: false)
        #expect(cache.page(for: key(tenant, after: 2)) != nil)
        let one = cache.bytes
        #expect(one > 0 && one < 300, "the page after 1 was dropped with the store: \(one) bytes held")
    }
}
