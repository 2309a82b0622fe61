import Crypto
import Database
import Foundation
import NIOCore
import PostgresNIO

/// The one path of every command route, keyed or not: a unit of work in a scope (the tenant the
/// command is for, or the platform for platform commands), the `Idempotency-Key` step, the
/// command itself, and its response recorded in the same unit of work.
///
/// With a key, `run` first takes a transaction-scoped advisory lock on it, then looks for a
/// recorded response:
/// - another request holds the lock: `IdempotencyError.inUse`, nothing done;
/// - a response recorded for another request (fingerprint differs): `.reused`;
/// - a response recorded for this request: replayed, the command not run;
/// - none: the command runs in the unit of work and its response is recorded there, so the
///   events and the response commit together (a crash before the commit leaves neither, a
///   crash after it both). A command that throws rolls everything back and leaves the key unused.
/// Without a key the command runs in the unit of work all the same.
///
/// Platform commands on a tenant (onboarding, plan changes) write to that tenant in units of
/// work of their own, so for them the key's lock and replay hold but not the shared commit.
public struct CommandPipeline: Sendable {
    let database: TenantDatabase
    /// How long a recorded response is replayed.
    public let retention: Duration
    /// Brings a tenant's read models up to the head of its log: run before a recorded success is
    /// replayed, since the request that recorded it may have died between its commit and its own
    /// catch-up (a crash), and its client reads what the response names next.
    let catchUp: (@Sendable (TenantID) async throws -> Void)?

    public init(database: TenantDatabase, retention: Duration, catchUp: (@Sendable (TenantID) async throws -> Void)? = nil) {
        self.database = database
        self.retention = retention
        self.catchUp = catchUp
    }

    /// The scope of platform keys' idempotency keys: no tenant has this id.
    public static let platformScope = TenantID(UUID(uuid: (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)))

    /// A hook for the crash test: set, the process dies between the commit and the response.
    static let killAfterCommit = ProcessInfo.processInfo.environment["PETSTORE_FAULT"] == "kill-after-idempotent-commit"

    /// An `Idempotency-Key` as sent by one API key in one scope, with the request it came with.
    public struct Key: Sendable {
        public let scope: TenantID
        public let apiKey: UUID
        public let value: String
        /// SHA-256 of the request (method, path and body).
        public let fingerprint: [UInt8]

        public init(scope: TenantID, apiKey: UUID, value: String, fingerprint: [UInt8]) {
            self.scope = scope
            self.apiKey = apiKey
            self.value = value
            self.fingerprint = fingerprint
        }

        /// One advisory lock per (scope, API key, idempotency key); a collision of 64-bit hashes
        /// would only make one request wait for the other's answer with a 409.
        var lock: Int64 {
            var hash = SHA256()
            hash.update(data: Array("idempotency \(scope.rawValue) \(apiKey) \(value)".utf8))
            return Array(hash.finalize()).prefix(8).reduce(Int64(0)) { $0 << 8 | Int64($1) }
        }
    }

    /// A response as recorded: status, headers as a JSON object, body.
    public struct Recorded: Sendable {
        public let status: Int
        public let headersJSON: String
        public let body: ByteBuffer

        public init(status: Int, headersJSON: String, body: ByteBuffer) {
            self.status = status
            self.headersJSON = headersJSON
            self.body = body
        }
    }

    /// What a command answered: the response to send, and the one to record for replays when it
    /// differs (a secret shown once is not replayed).
    public struct Reply: Sendable {
        public let response: Recorded
        public let recorded: Recorded

        public init(response: Recorded, recorded: Recorded? = nil) {
            self.response = response
            self.recorded = recorded ?? response
        }
    }

    /// For a command that writes in units of work of its own (a platform command acting on a
    /// tenant): with a key, the key's lock and record live in a unit of work in `scope` beside the
    /// command's; without one, the command just runs, holding no connection of the pipeline's.
    public func run(
        beside scope: TenantID, key: Key?, _ command: () async throws -> Reply
    ) async throws -> (response: Recorded, replayed: Bool) {
        guard let key else { return (try await command().response, false) }
        // Never grouped: the command's own units of work would wait for the group it is in.
        return try await run(in: scope, key: key, grouped: false) { _ in try await command() }
    }

    /// The response to send, and whether it is a replay of a recorded one. A tenant's commands
    /// commit in groups with other requests' (`TenantDatabase.withTenant(_:grouped:_:)`).
    public func run(
        in scope: TenantID, key: Key?, _ command: (TenantSession) async throws -> Reply
    ) async throws -> (response: Recorded, replayed: Bool) {
        try await run(in: scope, key: key, grouped: scope != Self.platformScope, command)
    }

    private func run(
        in scope: TenantID, key: Key?, grouped: Bool, _ command: (TenantSession) async throws -> Reply
    ) async throws -> (response: Recorded, replayed: Bool) {
        try await database.withTenant(scope, grouped: grouped) { session in
            guard let key else { return (try await command(session).response, false) }
            let locked = try await session.query("SELECT pg_try_advisory_xact_lock(\(key.lock))")
                    .decode(Bool.self).first(where: { _ in true }) ?? false
            guard locked else { throw IdempotencyError.inUse }
            let stored = try await session.query("""
                SELECT fingerprint, status, headers::text, body FROM idempotency_keys
                 WHERE tenant_id = \(scope) AND api_key_id = \(key.apiKey) AND key = \(key.value) AND expires_at > now()
                """)
            for try await (fingerprint, status, headers, body) in stored.decode((ByteBuffer, Int16, String, ByteBuffer).self) {
                guard Array(buffer: fingerprint) == key.fingerprint else { throw IdempotencyError.reused }
                if let catchUp, scope != Self.platformScope, (200..<300).contains(Int(status)) {
                    session.afterCommit {
                        // A replay is answered either way; the background loop catches up too.
                        try? await catchUp(scope)
                    }
                }
                return (Recorded(status: Int(status), headersJSON: headers, body: body), true)
            }
            if Self.killAfterCommit { session.afterCommit { kill(getpid(), SIGKILL) } }
            let reply = try await command(session)
            let response = reply.recorded
            let seconds = Double(retention.components.seconds)
            try await session.run("""
                INSERT INTO idempotency_keys (tenant_id, api_key_id, key, fingerprint, status, headers, body, expires_at)
                VALUES (\(scope), \(key.apiKey), \(key.value), \(ByteBuffer(bytes: key.fingerprint)), \(Int16(response.status)),
                        \(response.headersJSON)::jsonb, \(response.body), now() + make_interval(secs => \(seconds)))
                ON CONFLICT (tenant_id, api_key_id, key) DO UPDATE
                   SET fingerprint = excluded.fingerprint, status = excluded.status, headers = excluded.headers,
                       body = excluded.body, created_at = now(), expires_at = excluded.expires_at
                 WHERE idempotency_keys.expires_at <= now()
                """)
            return (reply.response, false)
        }
    }
}

/// Why a keyed command was not run.
public enum IdempotencyError: Error, CustomStringConvertible, CustomDebugStringConvertible {
    /// Another request with this key is being processed.
    case inUse
    /// This key was used for another request.
    case reused

    public var description: String {
        switch self {
        case .inUse: "a request with this Idempotency-Key is still being processed"
        case .reused: "this Idempotency-Key was used for a different request"
        }
    }

    public var debugDescription: String { "IdempotencyError.\(self == .inUse ? "inUse" : "reused"): \(description)" }
}

extension Array where Element == UInt8 {
    init(buffer: ByteBuffer) {
        self = buffer.getBytes(at: buffer.readerIndex, length: buffer.readableBytes) ?? []
    }
}
