import Database
import Domain
import EventLog
import Foundation
import Logging
import PostgresNIO
import Synchronization

/// Turns a presented API key into a principal.
///
/// Lookups by prefix go through `find_api_key`, which sees every tenant's keys: a key of tenant A
/// presented to tenant B must be recognized as A's (the caller answers 404 and audits it), not
/// dismissed as a bad key. Results are cached by key hash; a revocation clears them in this
/// process at once and in the others when its catalog notification arrives (`forget(tenant:)`),
/// `cacheTTL` bounding what a lost notification could leave.
public final class Authenticator: Sendable {
    let client: PostgresClient
    let logger: Logger
    let cacheTTL: Duration
    private let cache = Mutex<[ [UInt8]: (principal: Principal?, expires: ContinuousClock.Instant) ]>([:])
    private let touched = Mutex<[UUID: ContinuousClock.Instant]>([:])
    static let cacheLimit = 100_000

    public init(client: PostgresClient, cacheTTL: Duration = .seconds(5), logger: Logger) {
        self.client = client
        self.cacheTTL = cacheTTL
        self.logger = logger
    }

    /// The principal for an `Authorization` header value, or nil when it is missing, malformed,
    /// unknown or revoked. Database failures throw.
    public func authenticate(authorization: String?) async throws -> Principal? {
        guard let authorization, authorization.utf8.count < 512 else { return nil }
        let parts = authorization.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bearer", let key = APIKey(presented: String(parts[1])) else { return nil }
        let hash = key.hash
        let now = ContinuousClock.now
        if let cached = cache.withLock({ $0[hash] }), cached.expires > now { return cached.principal }

        let principal = try await lookUp(key, hash: hash)
        cache.withLock { cache in
            if cache.count >= Self.cacheLimit { cache.removeAll(keepingCapacity: true) }
            cache[hash] = (principal, now + cacheTTL)
        }
        if let principal { await recordUse(principal) }
        return principal
    }

    private func lookUp(_ key: APIKey, hash: [UInt8]) async throws -> Principal? {
        switch key.kind {
        case .tenant:
            let rows = try await client.query(
                "SELECT id, tenant_id, user_id, role, key_hash, revoked FROM find_api_key(\(key.prefix))", logger: logger)
            for try await (id, tenant, user, role, stored, revoked) in rows.decode((UUID, UUID, UUID, String, ByteBuffer, Bool).self) {
                guard !revoked, AuthenticatorHash.matches(stored, hash), let role = Role(rawValue: role) else { return nil }
                return Principal(tenant: TenantID(tenant), userID: user, keyID: id, role: role)
            }
            return nil
        case .platform:
            let rows = try await client.query(
                "SELECT id, key_hash, revoked_at IS NOT NULL FROM platform_keys WHERE prefix = \(key.prefix)", logger: logger)
            for try await (id, stored, revoked) in rows.decode((UUID, ByteBuffer, Bool).self) {
                guard !revoked, AuthenticatorHash.matches(stored, hash) else { return nil }
                return Principal(tenant: nil, userID: nil, keyID: id, role: nil)
            }
            return nil
        }
    }

    /// Forgets cached principals, e.g. after a key was revoked.
    public func invalidate() {
        cache.withLock { $0.removeAll() }
    }

    /// Forgets the cached principals of one tenant's keys, or with `platform` the platform's;
    /// keys found unknown or revoked are forgotten too (one may have been issued since).
    public func forget(tenant: TenantID?, platform: Bool = false) {
        cache.withLock { cache in
            cache = cache.filter { entry in
                guard let principal = entry.value.principal else { return false }
                return platform ? !principal.isPlatformAdmin : principal.tenant != tenant
            }
        }
    }

    /// Keeps `last_used_at` roughly current: one write per key per minute, on a cache miss.
    private func recordUse(_ principal: Principal) async {
        let now = ContinuousClock.now
        let due = touched.withLock { touched in
            if let last = touched[principal.keyID], now - last < .seconds(60) { return false }
            touched[principal.keyID] = now
            return true
        }
        guard due else { return }
        let sql: PostgresQuery = principal.tenant == nil
            ? "UPDATE platform_keys SET last_used_at = now() WHERE id = \(principal.keyID)"
            : "SELECT touch_api_key(\(principal.keyID))"
        do {
            try await client.query(sql, logger: logger).consume()
        } catch {
            logger.debug("could not record key use", metadata: ["error": "\(DatabaseURL.describe(error))"])
        }
    }
}

enum AuthenticatorHash {
    static func matches(_ stored: ByteBuffer, _ presented: [UInt8]) -> Bool {
        APIKey.constantTimeEquals(stored.getBytes(at: stored.readerIndex, length: stored.readableBytes) ?? [], presented)
    }
}
