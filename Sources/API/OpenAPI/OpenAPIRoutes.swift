import EventLog
import Hummingbird
import NIOCore
import Tenancy

/// `GET /openapi.json`: the OpenAPI document, for anyone (no key, no tenant).
struct OpenAPIRoutes {
    let table: RouteTable
    /// Serialized once: the document only changes with the build and the resolver's settings.
    let document: ByteBuffer

    init(resolver: TenantResolver, port: Int, table: RouteTable) {
        self.table = table
        self.document = ByteBuffer(bytes: CanonicalJSON.serialize(OpenAPIDocument.make(resolver: resolver, port: port)))
    }

    func register(on router: Router<AppRequestContext>) {
        let document = self.document
        router.route(.get, "/openapi.json", in: table) { _, _ in
            Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: document))
        }
    }
}
