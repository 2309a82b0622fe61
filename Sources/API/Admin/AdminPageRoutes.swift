import HTTPTypes
import Hummingbird
import NIOCore

/// `GET /admin` and its two assets: the analytics page for platform admins. The page itself
/// holds no data and needs no key; it asks for one and sends it to the admin API.
struct AdminPageRoutes {
    /// Everything from this origin, nothing inline, no framing: the page handles a secret key.
    static let securityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
        + "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

    func register(on router: Router<AppRequestContext>) {
        Self.serve(router, "/admin", AdminPage.html, as: "text/html; charset=utf-8")
        Self.serve(router, "/admin/app.css", AdminPage.css, as: "text/css; charset=utf-8")
        Self.serve(router, "/admin/app.js", AdminPage.javascript, as: "text/javascript; charset=utf-8")
    }

    private static func serve(_ router: Router<AppRequestContext>, _ path: RouterPath, _ text: String, as type: String) {
        let body = ByteBuffer(string: text)
        router.get(path) { _, _ in
            Response(status: .ok, headers: [
                .contentType: type,
                .contentSecurityPolicy: securityPolicy,
                .xContentTypeOptions: "nosniff",
                HTTPField.Name("Referrer-Policy")!: "no-referrer",
                .cacheControl: "no-cache",
            ], body: .init(byteBuffer: body))
        }
    }
}
