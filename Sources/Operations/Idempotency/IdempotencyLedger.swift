import Crypto
import Database
import Foundation
import NIOCore
import PostgresNIO

/// The responses of keyed commands (`Idempotency-Key`), recorded in the same unit of work as
/// what the command wrote: a crash before the commit leaves neither, a crash after it both.
///
/// `run` takes a transaction-scoped advisory lock on the key, then looks for a recorded response:
/// - another request holds the lock: `IdempotencyError.inUse`, nothing done;
/// - a response recorded for another request (fingerprint differs): `.reused`;
/// - a response recorded for this request: returned, to be replayed;
/// - none: `command` runs inside the unit of work, which its own sessions join; the response it
///   returns is recorded and commits with it, and nil rolls everything back.
public struct IdempotencyLedger: Sendable {
    let database: TenantDatabase
    /// How long a recorded response is replayed.
    public let retention: Duration

    /// The scope of platform keys' idempotency keys: no tenant has this id.
    public static let platformScope = TenantID(UUID(uuid: (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)))

    /// A hook for the crash test: set, the process dies between the commit and the response.
    static let killAfterCommit = ProcessInfo.processInfo.environment["PETSTORE_FAULT"] == "kill-after-idempotent-commit"

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

    /// The recorded response to replay, or nil when `command` ran (committed or rolled back).
    public func run(_ key: Key, _ command: () async throws -> Recorded?) async throws -> Recorded? {
        do {
            return try await database.withTenant(key.scope) { session in
                let locked = try await session.query("SELECT pg_try_advisory_xact_lock(\(key.lock))")
                    .decode(Bool.self).first(where: { _ in true }) ?? false
                guard locked else { throw IdempotencyError.inUse }
                let stored = try await session.query("""
                    SELECT fingerprint, status, headers::text, body FROM idempotency_keys
                     WHERE tenant_id = \(key.scope) AND api_key_id = \(key.apiKey) AND key = \(key.value) AND expires_at > now()
                    """)
                for try await (fingerprint, status, headers, body) in stored.decode((ByteBuffer, Int16, String, ByteBuffer).self) {
                    guard Array(buffer: fingerprint) == key.fingerprint else { throw IdempotencyError.reused }
                    return Recorded(status: Int(status), headersJSON: headers, body: body)
                }
                if Self.killAfterCommit { session.afterCommit { kill(getpid(), SIGKILL) } }
                guard let response = try await session.asAmbient(command) else { throw RolledBack() }
                let seconds = Double(retention.components.seconds)
                try await session.run("""
                    INSERT INTO idempotency_keys (tenant_id, api_key_id, key, fingerprint, status, headers, body, expires_at)
                    VALUES (\(key.scope), \(key.apiKey), \(key.value), \(ByteBuffer(bytes: key.fingerprint)), \(Int16(response.status)),
                            \(response.headersJSON)::jsonb, \(response.body), now() + make_interval(secs => \(seconds)))
                    ON CONFLICT (tenant_id, api_key_id, key) DO UPDATE
                       SET fingerprint = excluded.fingerprint, status = excluded.status, headers = excluded.headers,
                           body = excluded.body, created_at = now(), expires_at = excluded.expires_at
                     WHERE idempotency_keys.expires_at <= now()
                    """)
                return nil
            }
        } catch is RolledBack {
            return nil
        }
    }

    private struct RolledBack: Error {}
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
