import Domain
import EventLog

extension OpenAPIDocument {
    /// `components.schemas`: the bodies the routes take and give, snake_case as they are sent.
    static var schemas: JSONValue {
        let uuid = JSONSchema.string(format: "uuid")
        let time = JSONSchema.string(format: "date-time", description: "RFC 3339, UTC.")
        let hash = JSONSchema.string(pattern: "^[0-9a-f]{64}$", description: "SHA-256, hex.")
        let plans = Plan.allCases.map(\.rawValue)
        let placements = Placement.allCases.map(\.rawValue)
        let tenantRoles = ["admin", "member", "auditor"]
        let slug = JSONSchema.string(pattern: JSONSchema.slugPattern, description: "Lowercase; reserved words are refused.")
        let nullableText = JSONSchema.string(nullable: true)
        let petName = JSONSchema.requiredText(maxCharacters: Validation.petNameLength.upperBound, description: "The pet's name.")
        let species = JSONSchema.requiredText(maxCharacters: Validation.speciesLength.upperBound, description: "Such as `dog`.")
        return .object([
            "Problem": JSONSchema.object([
                "type": JSONSchema.string(format: "uri", description: "Stable per kind of problem; branch on it, not on title or detail."),
                "title": JSONSchema.string(),
                "status": JSONSchema.integer(minimum: 400, maximum: 599),
                "detail": JSONSchema.string(),
                "errors": JSONSchema.array(JSONSchema.ref("FieldError")),
                "policy": JSONSchema.string(description: "For quota-exceeded: the RateLimit-Policy entry that refused the request."),
            ], required: ["type", "title", "status"], description: "An RFC 9457 problem detail, sent as application/problem+json."),
            "FieldError": JSONSchema.object([
                "field": JSONSchema.string(), "message": JSONSchema.string(),
            ], required: ["field", "message"]),
            "Health": JSONSchema.object([
                "status": JSONSchema.string(values: ["ok", "ready"]),
                "migrations": JSONSchema.integer(minimum: 0, description: "How many migrations are applied (readiness only)."),
            ], required: ["status"]),

            "Pet": JSONSchema.object([
                "id": uuid,
                "name": JSONSchema.string(),
                "species": JSONSchema.string(),
                "breed": nullableText,
                "microchip_id": nullableText,
                "microchip_registered_at": JSONSchema.string(
                    format: "date-time", nullable: true,
                    description: "When the current microchip number was recorded on the pet (RFC 3339, UTC); null while it has none."),
                "deleted": JSONSchema.boolean,
                "created_at": time,
                "updated_at": time,
                "version": JSONSchema.integer(minimum: 1, description: "Grows by one with every change; the ETag."),
            ], required: ["id", "name", "species", "breed", "microchip_id", "microchip_registered_at", "deleted", "created_at", "updated_at", "version"]),
            "PetPage": JSONSchema.page(of: "Pet"),
            "PetCreate": JSONSchema.object([
                "id": JSONSchema.string(format: "uuid", nullable: true, description: "Chosen by the client, or generated when absent or null."),
                "name": petName,
                "species": species,
                "breed": JSONSchema.optionalText(maxCharacters: Validation.breedMaxLength, nullable: true, description: "The breed; null means none."),
                "microchip_id": JSONSchema.microchipID(nullable: true, description: "The microchip number; null means none."),
            ], required: ["name", "species"], closed: true),
            "PetPatch": JSONSchema.object([
                "name": petName,
                "species": species,
                "breed": JSONSchema.optionalText(maxCharacters: Validation.breedMaxLength, nullable: true, description: "The breed; null clears it."),
                "microchip_id": JSONSchema.microchipID(nullable: true, description: "The microchip number; null clears it."),
            ], closed: true, description: "Only the members sent change."),
            "PetHistory": JSONSchema.list(of: "PetEvent"),
            "PetEvent": JSONSchema.object([
                "seq": JSONSchema.integer(minimum: 1, description: "Position in the tenant's log."),
                "version": JSONSchema.integer(minimum: 1, description: "The pet's version after this event."),
                "type": JSONSchema.string(),
                "data": JSONSchema.object([:]),
                "metadata": JSONSchema.object([:], description: "Actor, request id, correlation and causation ids."),
                "recorded_at": time,
            ], required: ["seq", "version", "type", "data", "metadata", "recorded_at"]),

            "Config": JSONSchema.object([
                "values": .object([
                    "type": .string("object"),
                    "additionalProperties": JSONSchema.anyValue,
                    "description": .string("Every key with its effective value."),
                ]),
            ], required: ["values"]),
            "ConfigValue": JSONSchema.object(["value": JSONSchema.anyValue], required: ["value"], closed: true),
            "ConfigEntry": JSONSchema.object(["key": JSONSchema.string(), "value": JSONSchema.anyValue], required: ["key", "value"]),

            "Tenant": JSONSchema.object([
                "id": uuid,
                "slug": slug,
                "name": JSONSchema.string(),
                "plan": JSONSchema.string(values: plans),
                "status": JSONSchema.string(values: ["provisioning", "active", "suspended", "offboarding"]),
                "placement": JSONSchema.string(values: placements),
                "server": JSONSchema.string(description: "The registered server holding the tenant's data; `main` is the control plane's."),
                "created_at": time,
                "updated_at": time,
                "removal_scheduled_at": JSONSchema.string(format: "date-time", description: "Present once offboarding is requested."),
            ], required: ["id", "slug", "name", "plan", "status", "placement", "server", "created_at", "updated_at"]),
            "TenantCreate": JSONSchema.object([
                "slug": slug,
                "name": JSONSchema.requiredText(maxCharacters: Validation.tenantNameLength.upperBound, description: "The tenant's name."),
                "plan": JSONSchema.string(values: plans),
                "placement": JSONSchema.string(values: placements, nullable: true, description: "Defaults by plan when absent or null."),
                "server": JSONSchema.string(pattern: "^[a-z0-9][a-z0-9-]{0,30}$", nullable: true,
                                            description: "For placement database: the registered server its database is made on (main when absent or null)."),
                "admin_email": JSONSchema.email(nullable: true, description: "The first admin; admin@{slug}.petstore.invalid when absent or null."),
            ], required: ["slug", "name", "plan"], closed: true),
            "TenantCreated": JSONSchema.object([
                "tenant": JSONSchema.ref("Tenant"),
                "admin_api_key": JSONSchema.string(description: "The admin's key, shown only in this answer."),
            ], required: ["tenant"]),
            "TenantPatch": JSONSchema.object([
                "plan": JSONSchema.string(values: plans),
                "status": JSONSchema.string(values: ["active", "suspended"]),
            ], closed: true, description: "Only the members sent change; `name` cannot be changed (422)."),
            "TenantPage": JSONSchema.page(of: "Tenant"),
            "TenantMove": JSONSchema.object([
                "to": JSONSchema.string(values: placements, description: "Where the tenant goes; the tenant's plan must allow it."),
                "server": JSONSchema.string(pattern: "^[a-z0-9][a-z0-9-]{0,30}$", nullable: true,
                                            description: "For `to: database`: the registered server its database is made on (main when absent or null)."),
            ], required: ["to"], closed: true),
            "TenantMoved": JSONSchema.object([
                "tenant": JSONSchema.ref("Tenant"),
                "move": JSONSchema.object([
                    "from": JSONSchema.string(values: placements),
                    "to": JSONSchema.string(values: placements),
                    "last_seq": JSONSchema.integer(minimum: 0, description: "The head of the log the target was checked against."),
                    "head_hash": JSONSchema.string(pattern: "^([0-9a-f]{64})?$", description: "The head's hash, hex."),
                    "events_copied_online": JSONSchema.integer(minimum: 0, description: "Events copied while the tenant kept writing."),
                    "events_copied_in_pause": JSONSchema.integer(minimum: 0, description: "Events copied while its writes waited."),
                    "read_model_rows": JSONSchema.integer(minimum: 0),
                    "writes_paused_ms": JSONSchema.number(),
                ], required: ["from", "to", "last_seq", "head_hash", "events_copied_online", "events_copied_in_pause", "read_model_rows",
                              "writes_paused_ms"]),
            ], required: ["tenant"]),
            "Server": JSONSchema.object([
                "name": JSONSchema.string(pattern: "^[a-z0-9][a-z0-9-]{0,30}$"),
                "display": JSONSchema.string(description: "host:port/database, or DATABASE_URL for main: never a user or password."),
                "added_at": time,
                "tenants": JSONSchema.integer(minimum: 0, description: "Tenants placed on the server, in any state."),
            ], required: ["name", "display", "added_at", "tenants"]),
            "ServerCreate": JSONSchema.object([
                "name": JSONSchema.string(pattern: "^[a-z0-9][a-z0-9-]{0,30}$"),
                "url": JSONSchema.string(description: "postgres://user:password@host:port/database of a login that may create databases."),
            ], required: ["name", "url"], closed: true),
            "SecurityEvent": JSONSchema.object([
                "id": JSONSchema.integer(minimum: 1),
                "kind": JSONSchema.string(description: "Such as unknown_tenant or cross_tenant."),
                "window_start": time,
                "first_seen": time,
                "last_seen": time,
                "attempts": JSONSchema.integer(minimum: 1),
                "actor_tenant": uuid,
                "actor_key": uuid,
                "target_tenant": uuid,
                "target_slug": JSONSchema.string(),
                "method": JSONSchema.string(),
                "route": JSONSchema.string(),
                "client_address": JSONSchema.string(),
                "request_id": JSONSchema.string(),
            ], required: ["id", "kind", "window_start", "first_seen", "last_seen", "attempts", "method", "route"]),
            "SecurityEventPage": JSONSchema.page(of: "SecurityEvent"),
            "TenantSecurityEvent": JSONSchema.object([
                "id": JSONSchema.integer(minimum: 1),
                "kind": JSONSchema.string(description: "Such as cross_tenant."),
                "first_seen": time,
                "last_seen": time,
                "attempts": JSONSchema.integer(minimum: 1),
                "method": JSONSchema.string(),
                "route": JSONSchema.string(),
                "request_id": nullableText,
            ], required: ["id", "kind", "first_seen", "last_seen", "attempts", "method", "route"],
               description: "An attempt against this tenant, without who made it."),
            "TenantSecurityEventPage": JSONSchema.page(of: "TenantSecurityEvent"),

            "Event": JSONSchema.object([
                "seq": JSONSchema.integer(minimum: 1, description: "Position in the tenant's log, gap-free."),
                "stream": JSONSchema.string(description: "Such as `pet-<uuid>`."),
                "stream_version": JSONSchema.integer(minimum: 1),
                "type": JSONSchema.string(),
                "schema_version": JSONSchema.integer(minimum: 1),
                "data": JSONSchema.object([:]),
                "metadata": JSONSchema.object([:], description: "Actor, request id, correlation and causation ids."),
                "recorded_at": time,
                "prev_hash": hash,
                "hash": JSONSchema.string(pattern: "^[0-9a-f]{64}$", description: "SHA-256 of prev_hash and the canonical event, hex."),
            ], required: ["seq", "stream", "stream_version", "type", "schema_version", "data", "metadata", "recorded_at", "prev_hash", "hash"]),
            "EventPage": JSONSchema.object([
                "items": JSONSchema.array(JSONSchema.ref("Event")),
                "next_after": JSONSchema.integer(minimum: 1, nullable: true, description: "Pass as `after` for the next page; null on the last page."),
            ], required: ["items", "next_after"]),
            "Verification": JSONSchema.object([
                "ok": .object([
                    "type": .string("boolean"),
                    "description": .string("Whether the chain holds and agrees with the latest signed checkpoint."),
                ]),
                "checked": JSONSchema.integer(minimum: 0, description: "Events whose hash was recomputed."),
                "head_seq": JSONSchema.integer(minimum: 0),
                "head_hash": hash,
                "first_bad_seq": JSONSchema.integer(minimum: 1, description: "Present when `ok` is false: the first event that is wrong or missing."),
                "reason": JSONSchema.string(description: "Present when `ok` is false."),
                "checkpoint": JSONSchema.object([
                    "seq": JSONSchema.integer(minimum: 1),
                    "signed_at": time,
                    "signature_valid": JSONSchema.boolean,
                    "result": JSONSchema.string(values: ["consistent", "truncated", "rewritten"]),
                ], required: ["seq", "signed_at", "signature_valid", "result"], description: "The latest signed checkpoint, when there is one."),
            ], required: ["ok", "checked", "head_seq", "head_hash"]),
            "Checkpoint": JSONSchema.object([
                "tenant": uuid,
                "seq": JSONSchema.integer(minimum: 1),
                "head_hash": hash,
                "signed_at": time,
                "key_id": JSONSchema.string(),
                "signature": JSONSchema.string(pattern: "^[0-9a-f]{128}$", description: "Ed25519, hex."),
            ], required: ["tenant", "seq", "head_hash", "signed_at", "key_id", "signature"]),
            "CheckpointList": JSONSchema.list(of: "Checkpoint"),
            "SigningKey": JSONSchema.object([
                "kty": JSONSchema.string(values: ["OKP"]),
                "crv": JSONSchema.string(values: ["Ed25519"]),
                "alg": JSONSchema.string(values: ["EdDSA"]),
                "use": JSONSchema.string(values: ["sig"]),
                "kid": JSONSchema.string(),
                "x": JSONSchema.string(description: "The public key, base64url without padding."),
            ], required: ["kty", "crv", "alg", "use", "kid", "x"], description: "A JWK (RFC 8037)."),
            "Projection": JSONSchema.object([
                "name": JSONSchema.string(),
                "version": JSONSchema.string(description: "The first 12 hex digits of the SQL file's SHA-256."),
                "state": JSONSchema.string(values: ["building", "active", "retired"]),
                "tenants": JSONSchema.integer(minimum: 0),
                "tenants_behind": JSONSchema.integer(minimum: 0),
                "applied_events": JSONSchema.integer(minimum: 0),
                "lag_events": JSONSchema.integer(minimum: 0),
                "lag_ms_p50": JSONSchema.number(nullable: true),
                "lag_ms_p99": JSONSchema.number(nullable: true),
                "lag_samples": JSONSchema.integer(minimum: 0),
            ], required: ["name", "version", "state", "tenants", "tenants_behind", "applied_events", "lag_events", "lag_samples"]),

            "AnalyticsDay": JSONSchema.object([
                "day": JSONSchema.string(format: "date"),
                "commands": JSONSchema.integer(minimum: 0, description: "Appends of the tenant's own doing (security records excluded)."),
                "events": JSONSchema.integer(minimum: 0),
                "rate_limited_requests": JSONSchema.integer(minimum: 0),
                "cross_tenant_attempts": JSONSchema.integer(minimum: 0),
            ], required: ["day", "commands", "events", "rate_limited_requests", "cross_tenant_attempts"]),
            "AnalyticsPets": JSONSchema.object([
                "active": JSONSchema.integer(minimum: 0), "removed": JSONSchema.integer(minimum: 0),
            ], required: ["active", "removed"]),
            "AnalyticsSpecies": JSONSchema.object([
                "species": JSONSchema.string(), "active": JSONSchema.integer(minimum: 0), "removed": JSONSchema.integer(minimum: 0),
            ], required: ["species", "active", "removed"]),
            "Analytics": JSONSchema.object([
                "generated_at": JSONSchema.string(format: "date-time"),
                "from": JSONSchema.string(format: "date"),
                "to": JSONSchema.string(format: "date"),
                "projection": JSONSchema.object([
                    "version": JSONSchema.string(),
                    "tenants_behind": JSONSchema.integer(minimum: 0, description: "Tenants whose newest events are not counted yet."),
                    "events_behind": JSONSchema.integer(minimum: 0),
                ], required: ["version", "tenants_behind", "events_behind"]),
                "overall": JSONSchema.object([
                    "tenants": JSONSchema.integer(minimum: 0),
                    "tenants_by_plan": JSONSchema.array(JSONSchema.object(["plan": JSONSchema.string(values: plans), "tenants": JSONSchema.integer(minimum: 0)])),
                    "tenants_by_status": JSONSchema.array(JSONSchema.object(["status": JSONSchema.string(), "tenants": JSONSchema.integer(minimum: 0)])),
                    "pets": JSONSchema.ref("AnalyticsPets"),
                    "pets_by_species": JSONSchema.array(JSONSchema.ref("AnalyticsSpecies")),
                    "commands": JSONSchema.integer(minimum: 0),
                    "events": JSONSchema.integer(minimum: 0),
                    "rate_limited_requests": JSONSchema.integer(minimum: 0),
                    "cross_tenant_attempts": JSONSchema.integer(minimum: 0),
                    "unknown_tenant_requests": JSONSchema.integer(minimum: 0, description: "Requests naming no tenant; absent when one tenant is asked for."),
                    "daily": JSONSchema.array(JSONSchema.ref("AnalyticsDay")),
                ], required: ["tenants", "tenants_by_plan", "tenants_by_status", "pets", "pets_by_species", "commands", "events",
                              "rate_limited_requests", "cross_tenant_attempts", "daily"]),
                "tenants": JSONSchema.array(JSONSchema.object([
                    "id": uuid, "slug": JSONSchema.string(), "name": JSONSchema.string(), "plan": JSONSchema.string(values: plans),
                    "status": JSONSchema.string(),
                    "pets": JSONSchema.ref("AnalyticsPets"),
                    "pets_by_species": JSONSchema.array(JSONSchema.ref("AnalyticsSpecies")),
                    "commands": JSONSchema.integer(minimum: 0),
                    "events": JSONSchema.integer(minimum: 0),
                    "rate_limited_requests": JSONSchema.integer(minimum: 0),
                    "cross_tenant_attempts": JSONSchema.integer(minimum: 0),
                    "daily": JSONSchema.array(JSONSchema.ref("AnalyticsDay")),
                ])),
            ], required: ["generated_at", "from", "to", "projection", "overall", "tenants"]),

            "User": JSONSchema.object([
                // As `Validation.email` left it, which is looser than the `email` format.
                "id": uuid, "email": JSONSchema.string(description: "Lowercased; one `@`, no whitespace."),
                "role": JSONSchema.string(values: tenantRoles),
            ], required: ["id", "email", "role"]),
            "UserList": JSONSchema.list(of: "User"),
            "Key": JSONSchema.object([
                "id": uuid,
                "prefix": JSONSchema.string(description: "The key's public prefix; the secret is never shown again."),
                "user_id": uuid,
                "role": JSONSchema.string(values: tenantRoles),
                "revoked": JSONSchema.boolean,
            ], required: ["id", "prefix", "user_id", "role", "revoked"]),
            "KeyList": JSONSchema.list(of: "Key"),
            "KeyIssue": JSONSchema.object([
                "email": JSONSchema.email(description: "The user's; added with `role` if new."), "role": JSONSchema.string(values: tenantRoles),
            ], required: ["email", "role"], closed: true),
            "IssuedKey": JSONSchema.object([
                "id": uuid, "prefix": JSONSchema.string(),
                "api_key": JSONSchema.string(description: "Shown only in this answer: a replay (`Idempotent-Replayed: true`) leaves it out."),
            ], required: ["id", "prefix"]),
        ])
    }
}
