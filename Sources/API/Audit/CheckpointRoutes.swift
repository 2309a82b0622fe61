import Crypto
import EventLog
import Foundation
import Hummingbird
import Logging
import NIOCore
import Tenancy

/// Checkpoints over HTTP: the public key at a well-known route (anyone may verify), the tenant's
/// checkpoints for its auditors, and signing on demand for platform admins.
struct CheckpointRoutes {
    let catalog: Catalog
    let signer: CheckpointSigner
    let commands: CommandResponder
    let table: RouteTable

    static func json(_ checkpoint: Checkpoint) -> JSONValue {
        .object([
            JSONValue.Member("tenant", .string(checkpoint.tenant.description)),
            JSONValue.Member("seq", .number(Double(checkpoint.seq))),
            JSONValue.Member("head_hash", .string(checkpoint.headHash.hexString)),
            JSONValue.Member("signed_at", .string(checkpoint.signedAt)),
            JSONValue.Member("key_id", .string(checkpoint.keyID)),
            JSONValue.Member("signature", .string(checkpoint.signature.hexString)),
        ])
    }

    static func response(_ value: JSONValue, status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: CanonicalJSON.serialize(value))))
    }

    /// The public key as a JWK (RFC 8037).
    var jwk: JSONValue {
        .object([
            JSONValue.Member("kty", .string("OKP")),
            JSONValue.Member("crv", .string("Ed25519")),
            JSONValue.Member("alg", .string("EdDSA")),
            JSONValue.Member("use", .string("sig")),
            JSONValue.Member("kid", .string(signer.keyID)),
            JSONValue.Member("x", .string(signer.publicKey.rawRepresentation.base64EncodedString()
                .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: ""))),
        ])
    }

    func registerOpen(on router: Router<AppRequestContext>) {
        let body = jwk
        router.route(.get, "/.well-known/petstore-signing-key", in: table) { _, _ in Self.response(body) }
    }

    func register(on group: RouterGroup<TenantRequestContext>) {
        group.route(.get, "/events/checkpoints", roles: EventRoutes.readers, in: table) { request, context in
            let limit = try Pagination.limit(try QueryParameters(request, allowed: ["limit"]), default: 20, maximum: 100)
            let handle = catalog.handle(for: context.tenant)
            let kept = try await handle.store.checkpoints(tenant: handle.tenant.id, limit: limit)
            return Self.response(.object([JSONValue.Member("items", .array(kept.map(Self.json)))]))
        }
    }

    func register(on group: RouterGroup<PlatformRequestContext>) {
        group.route(.post, "/tenants/{slug}/checkpoints", in: table) { _, context in
            guard let tenant = try await catalog.tenant(slug: try context.parameters.require("slug")) else { throw Problem.notFound() }
            return try await commands.respond(context) {
                guard let signed = try await catalog.handle(for: tenant).store.checkpoint(tenant: tenant.id, signer: signer) else {
                    throw Problem.conflict("The tenant's log is empty: there is nothing to sign.")
                }
                return Reply(Self.response(Self.json(signed), status: .created))
            }
        }
    }
}
