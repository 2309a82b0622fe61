import Crypto
import Database
import EventLog
import Foundation
import Logging
import PostgresNIO
import Tenancy

/// The end of offboarding: every trace of a tenant removed, in every placement, and a signed
/// receipt kept in its place (Schema/0015_purge.sql and 0016 say what is removed and what the receipt
/// keeps).
///
/// The steps can be run again after a crash at any point, and the next run finishes the purge:
/// 1. The head of the tenant's log (last seq and hash) is written to a receipt not yet signed.
///    A rerun takes the head from there: the log may be gone by then.
/// 2. A tenant with a database of its own: its rows there are purged (for the receipt's counts)
///    and the database dropped, before the main database forgets it, so that no database is
///    ever left behind without a catalog row that names it.
/// 3. In the main database, in one transaction: every row of the tenant, its log partition and
///    schemas, its catalog row; and the receipt completed and signed.
public struct TenantPurge: Sendable {
    let catalog: Catalog
    let owner: DatabaseURL
    let homePools: HomePools?
    let signer: CheckpointSigner
    let logger: Logger

    public init(catalog: Catalog, owner: DatabaseURL, homePools: HomePools?, signer: CheckpointSigner, logger: Logger) {
        self.catalog = catalog
        self.owner = owner
        self.homePools = homePools
        self.signer = signer
        self.logger = logger
    }

    /// A finished purge, as signed.
    public struct Receipt: Sendable, Equatable {
        public let tenant: TenantID
        public let slug: String
        public let placement: String
        public let server: String
        /// Where the log ended: 0 and no hash for a tenant that never had an event.
        public let lastSeq: Int64
        public let headHash: [UInt8]?
        /// RFC 3339 with microseconds, as event times are written.
        public let purgedAt: String
        /// Rows removed per table (a database of its own's tables prefixed with its name).
        public let removed: [String: Int64]
        /// Tables, schemas and databases dropped.
        public let dropped: [String]
        public let keyID: String
        public let signature: [UInt8]

        /// The bytes signed: the canonical JSON of every field above but the key and signature.
        public var payload: [UInt8] {
            CanonicalJSON.serialize(.object([
                .init("dropped", .array(dropped.map(JSONValue.string))),
                .init("head_hash", headHash.map { .string($0.hexString) } ?? .null),
                .init("last_seq", .number(Double(lastSeq))),
                .init("placement", .string(placement)),
                .init("purged_at", .string(purgedAt)),
                .init("removed", .object(removed.keys.sorted().map { .init($0, .number(Double(removed[$0]!))) })),
                .init("server", .string(server)),
                .init("slug", .string(slug)),
                .init("tenant", .string(tenant.description)),
            ]))
        }

        public func isSigned(by key: Curve25519.Signing.PublicKey) -> Bool {
            keyID == CheckpointSigner.keyID(of: key) && key.isValidSignature(signature, for: payload)
        }

        /// Rows removed in all.
        public var rows: Int64 { removed.values.reduce(0, +) }
    }

    public enum Outcome: Sendable {
        case purged(Receipt)
        /// Purged before: its receipt.
        case alreadyPurged(Receipt)
    }

    /// Purges the tenant with `slug`, which must be offboarding; before its scheduled removal only
    /// when `early`.
    public func purge(slug: String, early: Bool, now: Date = Date()) async throws -> Outcome {
        guard let record = try await catalog.tenant(slug: slug) else {
            if let receipt = try await receipt(slug: slug) { return .alreadyPurged(receipt) }
            throw TenancyError(.notFound, "no tenant with slug '\(slug)'")
        }
        guard record.status == .offboarding else {
            throw TenancyError(.conflict, "tenant \(slug) is \(record.status.rawValue): only an offboarding tenant is purged (DELETE /api/admin/tenants/\(slug) first)")
        }
        if !early, let due = record.removalScheduledAt, due > now {
            throw TenancyError(.conflict, "tenant \(slug) is due for removal at \(Timestamps.format(due)); purge it earlier on purpose")
        }
        let head = try await start(record)
        var removed: [String: Int64] = [:]
        var dropped: [String] = []
        if record.placement == .database {
            (removed, dropped) = try await dropDatabase(of: record)
        }
        let receipt = try await finish(record, head: head, removed: removed, dropped: dropped, at: now)
        catalog.forget(purged: record.id, slug: slug)
        logger.notice("tenant purged", metadata: ["tenant": "\(record.id)", "slug": "\(slug)", "rows": "\(receipt.rows)"])
        return .purged(receipt)
    }

    /// The receipt of a purged tenant's slug (the latest, should the slug have been released and
    /// taken again).
    public func receipt(slug: String) async throws -> Receipt? {
        try await owner.withConnection(logger: logger) { connection in
            let rows = try await connection.query("""
                SELECT purged_tenant, slug, placement, server, last_seq, head_hash, purged_at, removed::text, key_id, signature
                  FROM purge_receipts WHERE slug = \(slug) AND purged_at IS NOT NULL ORDER BY started_at DESC LIMIT 1
                """, logger: logger)
            for try await row in rows.decode((UUID, String, String, String, Int64, ByteBuffer?, String, String, String, ByteBuffer).self) {
                return try Self.receipt(row)
            }
            return nil
        }
    }

    /// Releases a purged tenant's slug for a new tenant to take. False when none is reserved.
    public func releaseSlug(_ slug: String) async throws -> Bool {
        try await owner.withConnection(logger: logger) { connection in
            try await connection.query("""
                UPDATE purge_receipts SET slug_released_at = now() WHERE slug = \(slug) AND slug_released_at IS NULL AND purged_at IS NOT NULL
                 RETURNING purged_tenant
                """, logger: logger).decode(UUID.self).first(where: { _ in true }) != nil
        }
    }

    // MARK: - Steps

    /// The head of the log as the receipt will state it: read and written down on the first run,
    /// read back from there on the next.
    private func start(_ record: TenantRecord) async throws -> (seq: Int64, hash: [UInt8]?) {
        let kept = try await owner.withConnection(logger: logger) { connection in
            try await connection.query("SELECT last_seq, head_hash FROM purge_receipts WHERE purged_tenant = \(record.id)", logger: logger)
                .decode((Int64, ByteBuffer?).self).first(where: { _ in true })
        }
        if let kept { return (kept.0, kept.1.map { Array(buffer: $0) }) }
        let head = try await catalog.store.database.readTenant(record.id) { session in
            try await session.query("SELECT last_seq, head_hash FROM event_heads WHERE tenant_id = \(session.tenant)")
                .decode((Int64, ByteBuffer?).self).first(where: { _ in true })
        }
        let seq = head?.0 ?? 0
        let hash = head?.1.flatMap { seq > 0 ? Array(buffer: $0) : nil }
        try await owner.withConnection(logger: logger) { connection in
            try await connection.query("""
                INSERT INTO purge_receipts (purged_tenant, slug, placement, server, last_seq, head_hash)
                VALUES (\(record.id), \(record.slug), \(record.placement.rawValue), \(record.server), \(seq), \(hash.map { ByteBuffer(bytes: $0) }))
                ON CONFLICT (purged_tenant) DO NOTHING
                """, logger: logger).consume()
        }
        return (seq, hash)
    }

    /// Purges the rows of a tenant's own database (counted for the receipt) and drops it.
    private func dropDatabase(of record: TenantRecord) async throws -> ([String: Int64], [String]) {
        guard let homePools else { throw TenancyError(.invalid, "databases of their own are not reachable from this process") }
        let name = HomeDatabases.name(for: record.id)
        let server = try await homePools.url(of: record.server)
        let exists = try await server.withConnection(logger: logger) { connection in
            try await connection.query("SELECT count(*) FROM pg_database WHERE datname = \(name)", logger: logger)
                .decode(Int.self).first(where: { _ in true }) == 1
        }
        // Gone already: a run stopped after dropping it. The receipt counts what this run removed.
        guard exists else { return ([:], []) }
        let removal = try await server.with(database: name).withConnection(logger: logger) { connection in
            try await connection.withTransaction(logger: logger) { connection in
                try await Self.purgeRows(of: record.id, on: connection, logger: logger)
            }
        }
        await homePools.retire(server: record.server, database: name)
        try await server.withConnection(logger: logger) { [logger] connection in
            try await HomeDatabases.drop(name, on: connection, logger: logger)
        }
        var removed: [String: Int64] = [:]
        for (table, count) in removal?.rows ?? [:] { removed["\(name): \(table)"] = count }
        return (removed, (removal?.dropped.map { "\(name): \($0)" } ?? []) + ["database \(name) on \(record.server)"])
    }

    private func finish(_ record: TenantRecord, head: (seq: Int64, hash: [UInt8]?), removed: [String: Int64], dropped: [String],
                        at now: Date) async throws -> Receipt {
        try await owner.withConnection(logger: logger) { connection in
            try await connection.withTransaction(logger: logger) { connection in
                let platformRecords = try await Self.purgePlatformRecords(of: record, on: connection, logger: logger)
                let removal = try await Self.purgeRows(of: record.id, on: connection, logger: logger)
                var removed = removed
                if platformRecords > 0 { removed["idempotency_keys (platform)", default: 0] += platformRecords }
                for (table, count) in removal?.rows ?? [:] { removed[table, default: 0] += count }
                let unsigned = Receipt(tenant: record.id, slug: record.slug, placement: record.placement.rawValue, server: record.server,
                                       lastSeq: head.seq, headHash: head.hash, purgedAt: Timestamps.format(now), removed: removed,
                                       dropped: dropped + (removal?.dropped ?? []), keyID: signer.keyID, signature: [])
                let receipt = Receipt(tenant: unsigned.tenant, slug: unsigned.slug, placement: unsigned.placement, server: unsigned.server,
                                      lastSeq: unsigned.lastSeq, headHash: unsigned.headHash, purgedAt: unsigned.purgedAt,
                                      removed: unsigned.removed, dropped: unsigned.dropped, keyID: signer.keyID,
                                      signature: try signer.signature(for: unsigned.payload))
                try await connection.query("""
                    UPDATE purge_receipts
                       SET purged_at = \(receipt.purgedAt), removed = \(Self.removedJSON(receipt))::jsonb, key_id = \(receipt.keyID),
                           signature = \(ByteBuffer(bytes: receipt.signature))
                     WHERE purged_tenant = \(record.id)
                    """, logger: logger).consume()
                return receipt
            }
        }
    }

    // MARK: - Encoding

    struct Removal: Decodable {
        let rows: [String: Int64]
        let dropped: [String]
    }

    /// `purge_tenant_rows` in the transaction `connection` is in (the owner's login of that
    /// database), with the tenant entered for it.
    static func purgeRows(of tenant: TenantID, on connection: PostgresConnection, logger: Logger) async throws -> Removal? {
        try await TenantDatabase.enter(tenant, inOwnerTransaction: connection, logger: logger)
        let text = try await connection.query("SELECT purge_tenant_rows(\(tenant))::text", logger: logger)
            .decode(String?.self).first(where: { _ in true }) ?? nil
        return try text.map { try JSONDecoder().decode(Removal.self, from: Data($0.utf8)) }
    }

    /// The platform's idempotency records of commands on the tenant (onboarding's), removed
    /// under the platform's id in the main database's purge transaction.
    static func purgePlatformRecords(of record: TenantRecord, on connection: PostgresConnection, logger: Logger) async throws -> Int64 {
        try await TenantDatabase.enter(CommandPipeline.platformScope, inOwnerTransaction: connection, logger: logger)
        return try await connection.query("SELECT purge_platform_records(\(record.id), \(record.slug))", logger: logger)
            .decode(Int64.self).first(where: { _ in true }) ?? 0
    }

    /// What the receipt's row keeps of the removal: the rows per table and what was dropped.
    static func removedJSON(_ receipt: Receipt) -> String {
        CanonicalJSON.string(.object([
            .init("dropped", .array(receipt.dropped.map(JSONValue.string))),
            .init("rows", .object(receipt.removed.keys.sorted().map { .init($0, .number(Double(receipt.removed[$0]!))) })),
        ]))
    }

    static func receipt(_ row: (UUID, String, String, String, Int64, ByteBuffer?, String, String, String, ByteBuffer)) throws -> Receipt {
        let removal = try JSONDecoder().decode(Removal.self, from: Data(row.7.utf8))
        return Receipt(tenant: TenantID(row.0), slug: row.1, placement: row.2, server: row.3, lastSeq: row.4,
                       headHash: row.5.map { Array(buffer: $0) }, purgedAt: row.6, removed: removal.rows, dropped: removal.dropped,
                       keyID: row.8, signature: Array(buffer: row.9))
    }
}
