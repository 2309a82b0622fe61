import Crypto
import Database
import EventLog
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import Operations
import Synchronization
import Tenancy

/// `Idempotency-Key` on command routes (POST, PUT, PATCH, DELETE): checked, and fingerprinted
/// with the request (method, path, body), for the command pipeline to use. The key is scoped to
/// the tenant and the API key that sent it; platform routes are scoped to the platform key.
/// What a key does (lock, replay, record with the command's events) is `CommandPipeline`'s.
struct IdempotencyMiddleware: RouterMiddleware {
    typealias Context = AppRequestContext

    static let methods: Set<HTTPRequest.Method> = [.post, .put, .patch, .delete]

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let values = request.headers[values: .idempotencyKey]
        guard !values.isEmpty, Self.methods.contains(request.method), let principal = context.principal else {
            return try await next(request, context)
        }
        guard values.count == 1, let key = values.first, Self.isAcceptable(key) else {
            throw Problem.badRequest("Idempotency-Key must be one value of 1 to 255 visible ASCII characters.",
                                     errors: [.init(field: "Idempotency-Key", message: "must be 1 to 255 visible ASCII characters")])
        }
        var request = request
        let body = try await request.collectBody(upTo: context.maxUploadSize)
        var context = context
        context.idempotencyKey = CommandPipeline.Key(
            scope: context.tenant?.id ?? CommandPipeline.platformScope, apiKey: principal.keyID, value: key,
            fingerprint: Self.fingerprint(method: request.method, path: request.uri.description, body: body))
        return try await next(request, context)
    }

    static func isAcceptable(_ key: String) -> Bool {
        (1...255).contains(key.utf8.count) && key.utf8.allSatisfy { (0x20...0x7E).contains($0) }
    }

    static func fingerprint(method: HTTPRequest.Method, path: String, body: ByteBuffer) -> [UInt8] {
        var hash = SHA256()
        hash.update(data: Array("\(method.rawValue) \(path)\n".utf8))
        hash.update(data: Array(buffer: body))
        return Array(hash.finalize())
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
