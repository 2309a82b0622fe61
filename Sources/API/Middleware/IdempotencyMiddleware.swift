import Crypto
import Database
import EventLog
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import PostgresNIO
import Synchronization
import Tenancy

/// `Idempotency-Key` on command routes (POST, PUT, PATCH, DELETE), scoped to the tenant and the
/// API key that sent it; platform routes are scoped to the platform key (tenant id all zeros).
///
/// The whole keyed command runs in one transaction (a `CommandTransaction`) that first takes a
/// transaction-scoped advisory lock on the key and then looks for a stored response:
/// - another request holds the lock: 409 `idempotency-key-in-use`, nothing done;
/// - a stored response for another request (method, path or body differ): 422;
/// - a stored response for this request: replayed, with `Idempotent-Replayed: true`;
/// - none: the handler runs; what it writes joins the transaction; a 2xx response is stored in
///   it and commits with the events, anything else rolls back and leaves the key unused.
///
/// So a crash before the commit leaves nothing and a crash after it leaves the response, and a
/// retry finds one or the other. Projection catch-up waits for the commit. Platform commands
/// (onboarding, plan changes) write to the tenant they act on in transactions of their own, so
/// for them only the lock and the replay hold: the response is stored after they commit.
struct IdempotencyMiddleware: RouterMiddleware {
    typealias Context = AppRequestContext

    let catalog: Catalog
    let client: PostgresClient
    let signal: AppendSignal
    /// How long a stored response is replayed.
    let retention: Duration
    let logger: Logger

    static let methods: Set<HTTPRequest.Method> = [.post, .put, .patch, .delete]
    /// A hook for the crash test: set, the process dies between the commit and the response.
    static let killAfterCommit = ProcessInfo.processInfo.environment["PETSTORE_FAULT"] == "kill-after-idempotent-commit"

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let values = request.headers[values: .idempotencyKey]
        guard !values.isEmpty, Self.methods.contains(request.method), let principal = context.principal else {
            return try await next(request, context)
        }
        let scope = context.tenant?.id ?? Self.platformScope
        guard values.count == 1, let key = values.first, Self.isAcceptable(key) else {
            throw Problem.badRequest("Idempotency-Key must be one value of 1 to 255 visible ASCII characters.",
                                     errors: [.init(field: "Idempotency-Key", message: "must be 1 to 255 visible ASCII characters")])
        }
        var request = request
        let body = try await request.collectBody(upTo: context.maxUploadSize)
        let fingerprint = Self.fingerprint(method: request.method, path: request.uri.description, body: body)
        let lock = Self.lockKey(tenant: scope, apiKey: principal.keyID, key: key)
        let client = context.tenant.map { catalog.handle(for: $0).client } ?? self.client
        let requestForHandler = request

        let outcome: (response: StoredResponse, replayed: Bool, ambient: CommandTransaction?)
        do {
            outcome = try await client.withTenantTransaction(scope.rawValue, logger: context.logger) { connection in
                let locked = try await connection.query("SELECT pg_try_advisory_xact_lock(\(lock))", logger: context.logger)
                    .decode(Bool.self).first(where: { _ in true }) ?? false
                guard locked else { throw Problem.idempotencyKeyInUse() }
                let stored = try await connection.query("""
                    SELECT fingerprint, status, headers::text, body FROM idempotency_keys
                     WHERE tenant_id = \(scope.rawValue) AND api_key_id = \(principal.keyID) AND key = \(key) AND expires_at > now()
                    """, logger: context.logger)
                for try await (storedFingerprint, status, headers, body) in stored.decode((ByteBuffer, Int16, String, ByteBuffer).self) {
                    guard Array(buffer: storedFingerprint) == fingerprint else { throw Problem.idempotencyKeyReused() }
                    return (try StoredResponse(status: Int(status), headersJSON: headers, body: body), true, nil)
                }

                let ambient = CommandTransaction(tenant: scope.rawValue, connection: connection)
                let hints = Idempotency()
                let response = try await Idempotency.$current.withValue(hints) {
                    try await CommandTransaction.$current.withValue(ambient) { try await next(requestForHandler, context) }
                }
                let captured = try await StoredResponse(response)
                guard (200..<300).contains(captured.status) else { throw Rollback(response: captured) }
                let kept = hints.replacementBody.map { StoredResponse(status: captured.status, headers: captured.headers, body: $0) } ?? captured
                let seconds = Double(retention.components.seconds)
                try await connection.query("""
                    INSERT INTO idempotency_keys (tenant_id, api_key_id, key, fingerprint, status, headers, body, expires_at)
                    VALUES (\(scope.rawValue), \(principal.keyID), \(key), \(ByteBuffer(bytes: fingerprint)), \(Int16(kept.status)),
                            \(kept.headersJSON)::jsonb, \(kept.body), now() + make_interval(secs => \(seconds)))
                    ON CONFLICT (tenant_id, api_key_id, key) DO UPDATE
                       SET fingerprint = excluded.fingerprint, status = excluded.status, headers = excluded.headers,
                           body = excluded.body, created_at = now(), expires_at = excluded.expires_at
                     WHERE idempotency_keys.expires_at <= now()
                    """, logger: context.logger).consume()
                return (captured, false, ambient)
            }
        } catch let error as PostgresTransactionError {
            if let rollback = error.closureError as? Rollback { return rollback.response.response() }
            throw error.closureError ?? error
        } catch let rollback as Rollback {
            return rollback.response.response()
        }
        if let ambient = outcome.ambient {
            if Self.killAfterCommit { kill(getpid(), SIGKILL) }
            if scope != Self.platformScope { signal.appended(scope) }
            await ambient.committed()
        }
        var response = outcome.response.response()
        if outcome.replayed { response.headers[.idempotentReplayed] = "true" }
        return response
    }

    /// The scope of platform keys' idempotency keys: no tenant has this id.
    static let platformScope = TenantID(UUID(uuid: (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)))

    static func isAcceptable(_ key: String) -> Bool {
        (1...255).contains(key.utf8.count) && key.utf8.allSatisfy { (0x20...0x7E).contains($0) }
    }

    static func fingerprint(method: HTTPRequest.Method, path: String, body: ByteBuffer) -> [UInt8] {
        var hash = SHA256()
        hash.update(data: Array("\(method.rawValue) \(path)\n".utf8))
        hash.update(data: Array(buffer: body))
        return Array(hash.finalize())
    }

    /// One advisory lock per (tenant, API key, idempotency key); a collision of 64-bit hashes
    /// would only make one request wait for the other's answer with a 409.
    static func lockKey(tenant: TenantID, apiKey: UUID, key: String) -> Int64 {
        var hash = SHA256()
        hash.update(data: Array("idempotency \(tenant.rawValue) \(apiKey) \(key)".utf8))
        return Array(hash.finalize()).prefix(8).reduce(Int64(0)) { $0 << 8 | Int64($1) }
    }

    struct Rollback: Error {
        let response: StoredResponse
    }
}

/// What a handler may tell the idempotency layer about its response.
final class Idempotency: Sendable {
    @TaskLocal static var current: Idempotency?

    private let replacement = Mutex<ByteBuffer?>(nil)

    var replacementBody: ByteBuffer? { replacement.withLock { $0 } }

    /// Stores `body` for replays instead of the response's own, for a response that carries a
    /// secret shown once (an issued API key). Outside a keyed request it does nothing.
    static func storeInstead(_ body: ByteBuffer) {
        current?.replacement.withLock { $0 = body }
    }
}

/// A response as bytes: what is stored for a key and what is sent.
struct StoredResponse: Sendable {
    let status: Int
    let headers: [String: String]
    let body: ByteBuffer

    init(status: Int, headers: [String: String], body: ByteBuffer) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    init(status: Int, headersJSON: String, body: ByteBuffer) throws {
        self.status = status
        self.headers = try JSONDecoder().decode([String: String].self, from: Data(headersJSON.utf8))
        self.body = body
    }

    init(_ response: Response) async throws {
        let collector = Collector()
        try await response.body.write(CollectingWriter(collector: collector))
        status = response.status.code
        var headers: [String: String] = [:]
        for field in response.headers where !Self.framing.contains(field.name) { headers[field.name.canonicalName] = field.value }
        self.headers = headers
        body = collector.buffer.withLock { $0 }
    }

    var headersJSON: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return String(decoding: (try? encoder.encode(headers)) ?? Data("{}".utf8), as: UTF8.self)
    }

    /// How a body is framed belongs to the connection that sends it, not to the stored
    /// response: a replay may send another body (one without a secret) than the first answer.
    static let framing: Set<HTTPField.Name> = [.contentLength, .transferEncoding, .connection]

    func response() -> Response {
        var fields = HTTPFields()
        for (name, value) in headers.sorted(by: { $0.key < $1.key }) {
            if let name = HTTPField.Name(name), !Self.framing.contains(name) { fields[name] = value }
        }
        return Response(status: .init(code: status), headers: fields, body: .init(byteBuffer: body))
    }

    final class Collector: Sendable {
        let buffer = Mutex(ByteBuffer())
    }

    struct CollectingWriter: ResponseBodyWriter {
        let collector: Collector

        mutating func write(_ buffer: ByteBuffer) async throws {
            var buffer = buffer
            _ = collector.buffer.withLock { $0.writeBuffer(&buffer) }
        }

        consuming func finish(_ trailingHeaders: HTTPFields?) async throws {}
    }
}

extension Problem {
    static func idempotencyKeyInUse() -> Problem {
        Problem(type: typeBase + "idempotency-key-in-use", title: "Conflict", status: .conflict,
                detail: "A request with this Idempotency-Key is still being processed; retry after it completes.",
                headers: [.retryAfter: "1"])
    }

    static func idempotencyKeyReused() -> Problem {
        Problem(type: typeBase + "idempotency-key-reused", title: "Unprocessable Content", status: .unprocessableContent,
                detail: "This Idempotency-Key was used for a different request (method, path or body); use a new key.")
    }
}

extension HTTPField.Name {
    static let idempotencyKey = HTTPField.Name("Idempotency-Key")!
    static let idempotentReplayed = HTTPField.Name("Idempotent-Replayed")!
}
