import Database
import NIOCore
import Synchronization

/// Pages of the pets list this process has made, served again while the database says nothing
/// they were made from has changed.
///
/// Every list still asks the database, in the tenant's session, in one statement
/// (`read_pets_page_v3`): it passes the validator of the page held, and gets back the current
/// one, with the page made again only when they differ. A write anywhere (this process or
/// another) changes the validator in the transaction that changes the read model, so a page is
/// never served past a write its reader could have seen; what is saved is the database writing
/// a hundred pets as JSON, most of what a list cost it (bench/RESULTS.md).
///
/// Bounded by bytes, the oldest pages dropped first; a page older than `lifetime` is dropped
/// when next looked at or when a page is stored, so a tenant that left holds no memory for long.
public final class PetPageCache: Sendable {
    public struct Key: Hashable, Sendable {
        let tenant: TenantID
        let after: Int64
        let species: String?
        let limit: Int

        package init(tenant: TenantID, after: Int64, species: String?, limit: Int) {
            self.tenant = tenant
            self.after = after
            self.species = species
            self.limit = limit
        }
    }

    public struct Page: Sendable {
        package let validator: String
        package let items: ByteBuffer
        package let lastSeq: Int64?
        package let more: Bool
        package let stored: ContinuousClock.Instant
    }

    private struct State {
        var pages: [Key: Page] = [:]
        var bytes = 0
        var hits = 0
        var misses = 0
    }

    public let budget: Int
    public let lifetime: Duration
    private let state = Mutex(State())

    public init(budget: Int = 8 << 20, lifetime: Duration = .seconds(60)) {
        self.budget = budget
        self.lifetime = lifetime
    }

    /// The page held for `key`, if it is not too old.
    package func page(for key: Key) -> Page? {
        let now = ContinuousClock.now
        return state.withLock { state in
            guard let page = state.pages[key] else { return nil }
            guard now - page.stored < lifetime else {
                remove(key, from: &state)
                return nil
            }
            return page
        }
    }

    /// Counts a list served from a held page, or made again.
    func counted(hit: Bool) {
        state.withLock { hit ? ($0.hits += 1) : ($0.misses += 1) }
    }

    package func store(_ key: Key, validator: String, items: ByteBuffer, lastSeq: Int64?, more: Bool) {
        let size = Self.size(of: key, items: items, validator: validator)
        guard size <= budget / 4 else { return }
        let now = ContinuousClock.now
        state.withLock { state in
            remove(key, from: &state)
            for (key, page) in state.pages where now - page.stored >= lifetime { remove(key, from: &state) }
            while state.bytes + size > budget, let oldest = state.pages.min(by: { $0.value.stored < $1.value.stored })?.key {
                remove(oldest, from: &state)
            }
            state.pages[key] = Page(validator: validator, items: items, lastSeq: lastSeq, more: more, stored: now)
            state.bytes += size
        }
    }

    /// Lists served from a held page and lists made again, since the start.
    public var counts: (hits: Int, misses: Int) { state.withLock { ($0.hits, $0.misses) } }

    /// Bytes held now.
    public var bytes: Int { state.withLock { $0.bytes } }

    private func remove(_ key: Key, from state: inout State) {
        guard let page = state.pages.removeValue(forKey: key) else { return }
        state.bytes -= Self.size(of: key, items: page.items, validator: page.validator)
    }

    private static func size(of key: Key, items: ByteBuffer, validator: String) -> Int {
        items.readableBytes + validator.utf8.count + (key.species?.utf8.count ?? 0) + 128
    }
}
