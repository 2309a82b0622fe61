import Domain
import EventLog
import Tenancy

extension OpenAPIDocument {
    /// Every route the server answers, in one list: the document's paths come from here only, and
    /// `OpenAPITests` holds it against the route table and against the running server.
    static let operations: [OpenAPIOperation] = operationsHealth + operationsPlatform + operationsTenant + operationsPets + operationsConfig + operationsAudit

    // MARK: - Shared pieces

    private static let tooLarge = OpenAPIOperation.Failure(413, "The request body is larger than 64 KiB.")
    private static let notJSON = OpenAPIOperation.Failure(415, "The body is sent as something other than `application/json`.")
    private static let badBody = OpenAPIOperation.Failure(
        400, "The body is not one JSON object, has unknown members, lacks a required member or has a member of the wrong type (`errors` names them)."
    )

    private static let limitHelp = "Page size."
    private static let cursorHelp = "The `next_cursor` of the previous page; a cursor this server did not issue is a 400."
    private static let asOf = OpenAPIOperation.Parameter.query(
        "as_of", JSONSchema.string(format: "date-time"),
        "An RFC 3339 time, not in the future: answer as the pet was then, from its event history."
    )
    private static let petID = OpenAPIOperation.Parameter.path(
        "id", JSONSchema.string(format: "uuid"), "The pet's id; anything not a UUID is the same 404 as a missing pet."
    )
    private static let ifMatch = OpenAPIOperation.Parameter.header(
        "If-Match", JSONSchema.string(),
        "An ETag this server sent (`\"3\"`, the pet's version) or `*`: the change is made only if the pet is still at that version."
    )
    private static let etag = (name: "ETag", description: "The pet's version, quoted (`\"3\"`): send it back in `If-Match`.")
    private static let slug = OpenAPIOperation.Parameter.path("slug", JSONSchema.string(), "The tenant's slug.")
    private static let configKey = OpenAPIOperation.Parameter.path(
        "key", JSONSchema.string(pattern: "^[a-z0-9_.]{\(Validation.configKeyLength.lowerBound),\(Validation.configKeyLength.upperBound)}$"),
        "The configuration key, such as `include_deleted_pets`: lowercase letters, digits, `_` and `.`."
    )

    // MARK: - Operations

    private static let operationsHealth: [OpenAPIOperation] = [
        .init(.get, "/health/live", id: "live", tag: "operations", access: .open,
              summary: "Whether the process answers.",
              success: .init(status: 200, description: "The process is up.", schema: JSONSchema.ref("Health"))),
        .init(.get, "/health/ready", id: "ready", tag: "operations", access: .open,
              summary: "Whether the database is reachable and carries every migration this build knows.",
              success: .init(status: 200, description: "Ready for traffic.", schema: JSONSchema.ref("Health")),
              failures: [.init(503, "The database is unreachable, too slow to answer, or missing migrations.")]),
        .init(.get, "/metrics", id: "metrics", tag: "operations", access: .platform,
              summary: "Prometheus metrics.",
              details: "The Prometheus text exposition: requests by tenant, route template, method and status; request durations; "
                  + "events appended by tenant and type; rate-limited requests; projection positions, lag and lag times; database "
                  + "pool connections. Tenants beyond the configured cap are counted as `other`.",
              success: .init(status: 200, description: "Prometheus text format 0.0.4.", schema: nil, otherMediaTypes: ["text/plain"])),
        .init(.get, "/.well-known/petstore-signing-key", id: "signingKey", tag: "audit", access: .open,
              summary: "The public key that verifies checkpoints, as a JWK (OKP, Ed25519).",
              success: .init(status: 200, description: "The JWK, with `kid` as checkpoints name it.", schema: JSONSchema.ref("SigningKey"))),
        .init(.post, "/api/admin/tenants/{slug}/checkpoints", id: "signCheckpoint", tag: "admin", access: .platform,
              summary: "Signs a checkpoint of the tenant's log now.",
              parameters: [slug],
              success: .init(status: 201, description: "The checkpoint (the kept one when the log has not grown).", schema: JSONSchema.ref("Checkpoint")),
              failures: [.init(404, "No tenant has that slug."), .init(409, "The tenant's log is empty.")]),
        .init(.get, "/openapi.json", id: "openAPIDocument", tag: "operations", access: .open,
              summary: "This document.",
              success: .init(status: 200, description: "The OpenAPI 3.1 document of every route.",
                             schema: JSONSchema.object([:], description: "An OpenAPI 3.1.0 document."))),
    ]

    private static let operationsPlatform: [OpenAPIOperation] = [
        .init(.post, "/api/admin/tenants", id: "createTenant", tag: "admin", access: .platform,
              summary: "Onboards a tenant.",
              details: "Onboards a tenant: placement, migrations, an admin user and key, a sample pet, default configuration and "
                  + "a welcome message. Provisioning is idempotent and resumes after a crash.",
              body: "TenantCreate",
              success: .init(status: 201, description: "The tenant and its admin key, shown this once.", schema: JSONSchema.ref("TenantCreated"),
                             headers: [(name: "Location", description: "`/api/admin/tenants/{slug}`.")],
                             links: ["getTenant", "updateTenant", "signCheckpoint", "offboardTenant"].map { ($0, "slug", "$response.body#/tenant/slug") }),
              failures: [badBody, .init(409, "The slug is taken."), tooLarge, notJSON,
                         .init(422, "The slug is invalid or reserved, or the plan or placement is unknown (`errors` names them).")]),
        .init(.get, "/api/admin/tenants", id: "listTenants", tag: "admin", access: .platform,
              summary: "Lists tenants by slug.",
              parameters: [
                  .query("limit", JSONSchema.integer(minimum: 1, maximum: 200, defaultValue: 50), limitHelp),
                  .query("cursor", JSONSchema.string(), cursorHelp),
              ],
              success: .init(status: 200, description: "A page of tenants.", schema: JSONSchema.ref("TenantPage")),
              failures: [.init(400, "`limit` or `cursor` is invalid.")]),
        .init(.get, "/api/admin/tenants/{slug}", id: "getTenant", tag: "admin", access: .platform,
              summary: "Shows a tenant.",
              parameters: [slug],
              success: .init(status: 200, description: "The tenant.", schema: JSONSchema.ref("Tenant")),
              failures: [.init(404, "No tenant has that slug.")]),
        .init(.patch, "/api/admin/tenants/{slug}", id: "updateTenant", tag: "admin", access: .platform,
              summary: "Changes a tenant's plan or status.",
              details: "Changes a tenant's plan, or suspends or reactivates it; takes effect at once.",
              parameters: [slug], body: "TenantPatch",
              success: .init(status: 200, description: "The tenant as changed.", schema: JSONSchema.ref("Tenant")),
              failures: [badBody, .init(404, "No tenant has that slug."), .init(409, "The tenant is offboarding, or changed at the same time."),
                         tooLarge, notJSON, .init(422, "The plan or status is unknown, or the body tries to change the name.")]),
        .init(.delete, "/api/admin/tenants/{slug}", id: "offboardTenant", tag: "admin", access: .platform,
              summary: "Starts offboarding a tenant.",
              details: "Suspends the tenant at once and schedules its removal; nothing is exported or deleted yet.",
              parameters: [slug],
              success: .init(status: 202, description: "Offboarding started; the tenant as it now is.", schema: JSONSchema.ref("Tenant")),
              failures: [.init(404, "No tenant has that slug."), .init(409, "The tenant changed at the same time; retry.")]),
        .init(.post, "/api/admin/tenants/{slug}/move", id: "moveTenant", tag: "admin", access: .platform,
              summary: "Moves a tenant between the shared tables, a schema of its own and a database of its own while it serves.",
              details: "Copies the log in seq order while the tenant writes; then its writes wait (they are not refused) while "
                  + "the tail is copied, the copy is checked against the head seq and hash, the read models are copied and the "
                  + "catalog switches; reads go on throughout. Answers once the source's copy is removed. Seqs, times and hashes "
                  + "are unchanged. A move stopped on the way resumes when asked again (`petstore tenant move --abort` gives it up).",
              parameters: [slug], body: "TenantMove",
              success: .init(status: 200, description: "The tenant where it now is, and what the move did (absent when it was there already).",
                             schema: JSONSchema.ref("TenantMoved")),
              failures: [badBody, .init(404, "No tenant has that slug."),
                         .init(409, "Another move of the tenant is under way, or it is not in service, or behind this build."),
                         tooLarge, notJSON,
                         .init(422, "`to` is not a placement, or not one of the tenant's plan, or `server` is unknown or given for another "
                             + "placement, or the tenant is in a database of its own and `to` is not shared."),
                         .init(503, "This server has no database owner's login, or the tenant's head row stayed locked too long.")]),
        .init(.get, "/api/admin/security-events", id: "listSecurityEvents", tag: "admin", access: .platform,
              summary: "Lists the platform security log, newest first.",
              details: "Lists the platform security log, newest first: attempts on unknown tenants and cross-tenant attempts, "
                  + "aggregated per window.",
              parameters: [
                  .query("limit", JSONSchema.integer(minimum: 1, maximum: 500, defaultValue: 50), limitHelp),
                  .query("cursor", JSONSchema.string(), cursorHelp),
                  .query("tenant", JSONSchema.string(pattern: JSONSchema.slugPattern), "Only attempts against this tenant (by slug) or made with its keys."),
                  .query("kind", JSONSchema.string(values: SecurityEventRoutes.kinds), "Only this kind."),
              ],
              success: .init(status: 200, description: "A page of security events.", schema: JSONSchema.ref("SecurityEventPage")),
              failures: [.init(400, "`limit`, `cursor` or `kind` is invalid, or a parameter is unknown."), .init(404, "No tenant has that slug.")]),
        .init(.get, "/api/admin/analytics", id: "getAnalytics", tag: "admin", access: .platform,
              summary: "Cross-tenant analytics, per tenant and overall.",
              details: "Per tenant and overall: pets by species (as they are now), commands, events, requests refused for quota "
                  + "and cross-tenant attempts against the tenant per UTC day over the range, and tenants by plan and status. "
                  + "Pets, commands and events come from the analytics projection; `projection` says how far behind the logs it is.",
              parameters: [
                  .query("from", JSONSchema.string(format: "date"), "First UTC day (default: 29 days before `to`)."),
                  .query("to", JSONSchema.string(format: "date"), "Last UTC day (default: today); at most 366 days in all."),
                  .query("tenant", JSONSchema.string(pattern: JSONSchema.slugPattern), "Only this tenant (by slug); `overall` then sums it alone."),
              ],
              success: .init(status: 200, description: "The analytics.", schema: JSONSchema.ref("Analytics")),
              failures: [.init(400, "A day is malformed, the range is reversed or longer than 366 days, or a parameter is unknown."),
                         .init(404, "No tenant has that slug."), .init(503, "The analytics projection is not installed.")]),
        .init(.get, "/api/admin/servers", id: "listServers", tag: "admin", access: .platform,
              summary: "Lists the PostgreSQL servers tenants may be placed on.",
              details: "Lists the servers by name, `main` (the server of DATABASE_URL) first, with how many tenants each holds. "
                  + "A server's URL is never shown: `display` gives host, port and database.",
              parameters: [],
              success: .init(status: 200, description: "Every server.", schema: JSONSchema.list(of: "Server")),
              failures: []),
        .init(.post, "/api/admin/servers", id: "addServer", tag: "admin", access: .platform,
              summary: "Registers a PostgreSQL server.",
              details: "Registers a server by name after connecting to it: it must run PostgreSQL 15 or later and the URL's login "
                  + "must be allowed to create databases (onboarding makes one per `database` tenant there).",
              body: "ServerCreate",
              success: .init(status: 201, description: "The server as registered.", schema: JSONSchema.ref("Server"),
                             headers: [(name: "Location", description: "`/api/admin/servers/{name}`.")]),
              failures: [badBody, .init(409, "A server has that name, or the name is `main`."), tooLarge, notJSON,
                         .init(422, "The name or URL is invalid, or the server cannot be reached or used (`errors` says why).")]),
        .init(.delete, "/api/admin/servers/{name}", id: "removeServer", tag: "admin", access: .platform,
              summary: "Forgets a PostgreSQL server.",
              details: "Forgets a server. Refused for `main` and while any tenant is placed on the server.",
              parameters: [.path("name", JSONSchema.string(), "The server's name.")],
              success: .init(status: 204, description: "The server is forgotten; nothing on it was touched.", schema: nil),
              failures: [.init(404, "No server has that name."), .init(409, "Tenants are placed on it, or it is `main`.")]),
        .init(.get, "/api/admin/projections", id: "listProjections", tag: "admin", access: .platform,
              summary: "Shows each projection version's progress and lag.",
              details: "Shows each installed projection version: its state (building, active, retired), how many tenants it "
                  + "covers and how many are behind, events applied and still to apply, and the p50/p99 time in milliseconds "
                  + "between an event being recorded and this process projecting it.",
              parameters: [],
              success: .init(status: 200, description: "Every projection version.", schema: JSONSchema.list(of: "Projection")),
              failures: []),
    ]

    private static let operationsTenant: [OpenAPIOperation] = [
        .init(.get, "/api/tenant", id: "getOwnTenant", tag: "tenant", access: .tenant([.admin, .member, .auditor]),
              summary: "Shows the caller's own tenant.",
              success: .init(status: 200, description: "The tenant.", schema: JSONSchema.ref("Tenant"))),
        .init(.get, "/api/users", id: "listUsers", tag: "tenant", access: .tenant([.admin]),
              summary: "Lists the tenant's users by email.",
              success: .init(status: 200, description: "Every user.", schema: JSONSchema.ref("UserList"))),
        .init(.get, "/api/keys", id: "listKeys", tag: "tenant", access: .tenant([.admin]),
              summary: "Lists the tenant's API keys by prefix, revoked ones included.",
              success: .init(status: 200, description: "Every key (never its secret).", schema: JSONSchema.ref("KeyList"))),
        .init(.post, "/api/keys", id: "issueKey", tag: "tenant", access: .tenant([.admin]),
              summary: "Issues an API key to a user, adding the user if new.",
              body: "KeyIssue",
              success: .init(status: 201, description: "The key, shown this once.", schema: JSONSchema.ref("IssuedKey"),
                             links: [("revokeKey", "id", "$response.body#/id")]),
              failures: [badBody, .init(409, "A user with that email exists, or the tenant changed at the same time."), tooLarge, notJSON,
                         .init(422, "The role is unknown, or the user already exists with another role.")]),
        .init(.delete, "/api/keys/{id}", id: "revokeKey", tag: "tenant", access: .tenant([.admin]),
              summary: "Revokes an API key.",
              parameters: [.path("id", JSONSchema.string(format: "uuid"), "The key's id.")],
              success: .init(status: 204, description: "Revoked; every server refuses the key once the revocation commits.", schema: nil),
              failures: [.init(404, "No key of this tenant has that id."), .init(409, "The tenant changed at the same time; retry.")]),
        .init(.delete, "/api/users/{id}", id: "eraseUser", tag: "tenant", access: .tenant([.admin]),
              summary: "Erases a user and their personal data (GDPR art. 17).",
              details: "Revokes the user's keys and destroys the key their personal data (email) is sealed with, in one "
                  + "transaction that records a `UserErased` event. The log keeps the sealed bytes, so `audit verify` still "
                  + "passes and exports taken before still verify; every read after shows the fields as `[erased]`. "
                  + "Refused while the user holds the tenant's last active admin keys.",
              parameters: [.path("id", JSONSchema.string(format: "uuid"), "The user's id (from `GET /api/users`)."),
                           .query("erase", JSONSchema.string(values: ["true"]), "Must be `true`: erasure cannot be undone.")],
              success: .init(status: 204, description: "Erased; every server refuses the user's keys once it commits.", schema: nil),
              failures: [.init(400, "`erase=true` is missing."), .init(404, "No user of this tenant has that id."),
                         .init(409, "The user holds the tenant's last active admin keys, or the tenant changed at the same time.")]),
    ]

    private static let operationsPets: [OpenAPIOperation] = [
        .init(.post, "/api/pets", id: "createPet", tag: "pets", access: .tenant(PetRoutes.writers),
              summary: "Registers a pet.",
              body: "PetCreate",
              success: .init(status: 201, description: "The pet.", schema: JSONSchema.ref("Pet"),
                             headers: [(name: "Location", description: "`/api/pets/{id}`."), etag],
                             links: ["getPet", "updatePet", "getPetHistory", "deletePet"].map { ($0, "id", "$response.body#/id") }),
              failures: [badBody, .init(409, "A pet with that id exists."), tooLarge, notJSON,
                         .init(422, "A field is invalid, such as an empty name (`errors` names them).")]),
        .init(.get, "/api/pets", id: "listPets", tag: "pets", access: .tenant(PetRoutes.readers),
              summary: "Lists pets in registration order.",
              details: "Lists pets in registration order. Removed pets are listed only when the tenant's `include_deleted_pets` is true.",
              parameters: [
                  .query("limit", JSONSchema.integer(minimum: 1, maximum: 100, defaultValue: 20), limitHelp),
                  .query("cursor", JSONSchema.string(), cursorHelp),
                  // At most 50 characters as a person counts them: JSON Schema counts code points, so no maxLength.
                  .query("species", JSONSchema.string(pattern: "^[^\(JSONSchema.controlClass)]*$", minLength: 1),
                         "Only pets of this species (1 to 50 characters, no control characters)."),
              ],
              success: .init(status: 200, description: "A page of pets.", schema: JSONSchema.ref("PetPage")),
              failures: [.init(400, "`limit`, `cursor` or `species` is invalid, or another query parameter is sent.")]),
        .init(.get, "/api/pets/{id}", id: "getPet", tag: "pets", access: .tenant(PetRoutes.readers),
              summary: "Shows a pet, now or as it was at `as_of`.",
              parameters: [petID, asOf],
              success: .init(status: 200, description: "The pet.", schema: JSONSchema.ref("Pet"), headers: [etag]),
              failures: [.init(400, "`as_of` is not an RFC 3339 time or is in the future."),
                         .init(404, "No such pet, or it is removed and the tenant does not list removed pets.")]),
        .init(.patch, "/api/pets/{id}", id: "updatePet", tag: "pets", access: .tenant(PetRoutes.writers),
              summary: "Changes a pet.",
              details: "Changes the members sent; `null` clears `breed` or `microchip_id`.",
              parameters: [petID, ifMatch], body: "PetPatch",
              success: .init(status: 200, description: "The pet as changed.", schema: JSONSchema.ref("Pet"), headers: [etag]),
              failures: [badBody, .init(400, "`If-Match` is not an ETag this server sent."), .init(404, "No such pet, or it is removed."),
                         .init(412, "`If-Match` names a version the pet is no longer at."), tooLarge, notJSON,
                         .init(422, "A field is invalid (`errors` names them).")]),
        .init(.delete, "/api/pets/{id}", id: "deletePet", tag: "pets", access: .tenant(PetRoutes.writers),
              summary: "Removes a pet (a soft delete: its history stays); removing a removed pet changes nothing.",
              parameters: [petID, ifMatch],
              success: .init(status: 204, description: "Removed.", schema: nil),
              failures: [.init(400, "`If-Match` is not an ETag this server sent."), .init(404, "No such pet."),
                         .init(412, "`If-Match` names a version the pet is no longer at.")]),
        .init(.get, "/api/pets/{id}/history", id: "getPetHistory", tag: "pets", access: .tenant(PetRoutes.readers),
              summary: "Lists a pet's events in order, up to `as_of` if given.",
              parameters: [petID, asOf],
              success: .init(status: 200, description: "The pet's events.", schema: JSONSchema.ref("PetHistory")),
              failures: [.init(400, "`as_of` is not an RFC 3339 time or is in the future."), .init(404, "No such pet (at that time).")]),
    ]

    private static let operationsConfig: [OpenAPIOperation] = [
        .init(.get, "/api/config", id: "getConfig", tag: "config", access: .tenant([.admin, .member, .auditor]),
              summary: "Shows every effective setting: the defaults, overridden by what the tenant set.",
              success: .init(status: 200, description: "The settings.", schema: JSONSchema.ref("Config"))),
        .init(.put, "/api/config/{key}", id: "setConfigValue", tag: "config", access: .tenant([.admin]),
              summary: "Sets a setting.",
              parameters: [configKey], body: "ConfigValue",
              success: .init(status: 200, description: "The setting as stored.", schema: JSONSchema.ref("ConfigEntry"),
                             links: [("deleteConfigValue", "key", "$response.body#/key")]),
              failures: [.init(400, "The body is not `{\"value\": <json>}`."), tooLarge, notJSON, .init(422, "The key is unknown or malformed, or the value is not valid for it.")]),
        .init(.delete, "/api/config/{key}", id: "deleteConfigValue", tag: "config", access: .tenant([.admin]),
              summary: "Returns a setting to its default.",
              parameters: [configKey],
              success: .init(status: 204, description: "The default applies again.", schema: nil),
              failures: [.init(422, "The key is unknown or malformed.")]),
    ]

    private static let operationsAudit: [OpenAPIOperation] = [
        .init(.get, "/api/events", id: "listEvents", tag: "audit", access: .tenant(EventRoutes.readers),
              summary: "The tenant's event log, in order.",
              details: "The tenant's event log in `seq` order, each event with its stream, type, data, metadata, time and hashes. "
                  + "As JSON, a page of `limit` events and `next_after` to continue from; with `Accept: application/x-ndjson`, every "
                  + "selected event, one canonical JSON object per line, streamed as it is read.",
              parameters: [
                  .query("after", JSONSchema.integer(minimum: 0, defaultValue: 0), "Only events after this sequence number."),
                  .query("limit", JSONSchema.integer(minimum: 1, maximum: 1000, defaultValue: 100), limitHelp + " Ignored for NDJSON."),
                  .query("type", JSONSchema.string(minLength: 1, maxLength: 100), "Only events of this type, such as `PetRegistered`."),
                  .query("stream", JSONSchema.string(minLength: 1, maxLength: 200), "Only events of this stream, such as `pet-<uuid>`."),
                  .query("from", JSONSchema.string(format: "date-time"), "Only events recorded at or after this RFC 3339 time."),
                  .query("to", JSONSchema.string(format: "date-time"), "Only events recorded before this RFC 3339 time."),
              ],
              success: .init(status: 200, description: "A page of events, or the NDJSON stream.", schema: JSONSchema.ref("EventPage"),
                             otherMediaTypes: ["application/x-ndjson"]),
              failures: [.init(400, "A query parameter is invalid or unknown, or the time range is reversed.")]),
        .init(.get, "/api/events/verify", id: "verifyEvents", tag: "audit", access: .tenant(EventRoutes.readers),
              summary: "Verifies the tenant's hash chain.",
              details: "Recomputes every event's hash from its canonical form and the previous hash, and checks the chain against "
                  + "the stored head: `ok` with the count and head hash, or `ok: false` with the first bad sequence number.",
              success: .init(status: 200, description: "The verification.", schema: JSONSchema.ref("Verification"))),
        .init(.get, "/api/events/checkpoints", id: "listCheckpoints", tag: "audit", access: .tenant(EventRoutes.readers),
              summary: "The tenant's signed checkpoints, newest first.",
              details: "Each is the platform's Ed25519 signature (hex) over the canonical JSON of `head_hash`, `seq`, `signed_at` and "
                  + "`tenant`; the public key is at `/.well-known/petstore-signing-key`.",
              parameters: [.query("limit", JSONSchema.integer(minimum: 1, maximum: 100, defaultValue: 20), limitHelp)],
              success: .init(status: 200, description: "The checkpoints.", schema: JSONSchema.ref("CheckpointList")),
              failures: [.init(400, "`limit` is invalid.")]),
        .init(.get, "/api/security-events", id: "listTenantSecurityEvents", tag: "audit", access: .tenant(EventRoutes.readers),
              summary: "Attempts other tenants' keys made against this tenant, newest first.",
              parameters: [
                  .query("limit", JSONSchema.integer(minimum: 1, maximum: 500, defaultValue: 50), limitHelp),
                  .query("cursor", JSONSchema.string(), cursorHelp),
              ],
              success: .init(status: 200, description: "A page of security events (without who made them).",
                             schema: JSONSchema.ref("TenantSecurityEventPage")),
              failures: [.init(400, "`limit` or `cursor` is invalid.")]),
    ]
}
