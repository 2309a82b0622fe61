import Database
import Domain
import EventLog
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import Operations
import Tenancy

/// The tenant's own history for its auditors and admins: `GET /api/events` (a page as JSON, or
/// the whole selection as NDJSON, streamed), `GET /api/events/verify`, and the attempts other
/// tenants' keys made against this tenant, `GET /api/security-events`. Read-only: auditors may
/// call these and nothing that commands.
struct EventRoutes {
    let catalog: Catalog
    let signer: CheckpointSigner
    let securityEvents: SecurityEventQueries
    let table: RouteTable

    static let readers: Set<Role> = [.admin, .auditor]

    func register(on group: RouterGroup<TenantRequestContext>) {
        group.route(.get, "/events", roles: Self.readers, in: table) { request, context in try await events(request, context) }
        group.route(.get, "/events/verify", roles: Self.readers, in: table) { _, context in try await verify(context) }
        group.route(.get, "/security-events", roles: Self.readers, in: table) { request, context in try await securityEvents(request, context) }
    }

    /// Which events a request asks for.
    struct Selection: Sendable {
        var after: Int64 = 0
        var type: String?
        var stream: String?
        var from: Date?
        var to: Date?

        func matches(_ event: RecordedEvent) -> Bool {
            if let type, event.type != type { return false }
            if let stream, event.stream.description != stream { return false }
            if from != nil || to != nil {
                let at = event.recordedAt
                if let from, at < from { return false }
                if let to, at >= to { return false }
            }
            return true
        }

        init(_ query: QueryParameters) throws {
            if let raw = query["after"] {
                guard let value = Int64(raw), value >= 0 else {
                    throw Problem.badRequest("after must be a sequence number, 0 or more.", errors: [.init(field: "after", message: "must be an integer >= 0")])
                }
                after = value
            }
            type = try query["type"].map { raw in
                // Counted in code points, as JSON Schema's maxLength counts: these are identifiers, not prose.
                guard (1...100).contains(raw.unicodeScalars.count) else { throw Problem.badRequest("type must be 1 to 100 characters.") }
                return String(raw)
            }
            stream = try query["stream"].map { raw in
                guard (1...200).contains(raw.unicodeScalars.count) else { throw Problem.badRequest("stream must be 1 to 200 characters, such as pet-<uuid>.") }
                return String(raw).lowercased()
            }
            from = try query.time("from")
            to = try query.time("to")
            if let from, let to, from > to {
                throw Problem.badRequest("The time range is reversed: from is after to.", errors: [.init(field: "from", message: "is after to")])
            }
        }
    }

    func events(_ request: Request, _ context: TenantRequestContext) async throws -> Response {
        let query = try QueryParameters(request, allowed: ["after", "limit", "type", "stream", "from", "to"])
        let selection = try Selection(query)
        let handle = catalog.handle(for: context.tenant)
        let sequence = handle.store.events(tenant: handle.tenant.id, after: selection.after, pageSize: 1000)
        if request.headers[.accept]?.contains("application/x-ndjson") == true {
            // Streamed a page at a time: the first lines leave before the history is read, and
            // memory holds one page whatever the log's length.
            let logger = context.logger
            return Response(status: .ok, headers: [.contentType: "application/x-ndjson"], body: ResponseBody { writer in
                var lines = ByteBuffer()
                do {
                    for try await event in sequence where selection.matches(event) {
                        lines.writeBytes(ExportFormat.line(event))
                        lines.writeInteger(UInt8(ascii: "\n"))
                        if lines.readableBytes >= 64 * 1024 {
                            try await writer.write(lines)
                            lines.clear()
                        }
                    }
                } catch let error as EventLogError {
                    // Headers are gone; end the stream early rather than pretend it is whole.
                    logger.error("event stream failed", metadata: ["error": "\(error)"])
                    throw error
                }
                if lines.readableBytes > 0 { try await writer.write(lines) }
                try await writer.finish(nil)
            })
        }
        let limit = try Pagination.limit(query, default: 100, maximum: 1000)
        var items: [[UInt8]] = []
        var last: Int64?
        var more = false
        for try await event in sequence where selection.matches(event) {
            if items.count == limit { more = true; break }
            items.append(ExportFormat.line(event))
            last = event.seq
        }
        var body: [UInt8] = Array(#"{"items":["#.utf8)
        for (index, item) in items.enumerated() {
            if index > 0 { body.append(UInt8(ascii: ",")) }
            body.append(contentsOf: item)
        }
        body.append(contentsOf: Array(#"],"next_after":"#.utf8))
        body.append(contentsOf: Array((more ? last.map(String.init) ?? "null" : "null").utf8))
        body.append(UInt8(ascii: "}"))
        return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }


    func verify(_ context: TenantRequestContext) async throws -> Response {
        let handle = catalog.handle(for: context.tenant)
        let result = try await handle.store.verify(tenant: handle.tenant.id)
        var members: [String: JSONValue] = [
            "ok": .bool(result.valid),
            "checked": .number(Double(result.checked)),
            "head_seq": .number(Double(result.headSeq)),
            "head_hash": .string(result.headHash.hexString),
        ]
        if let bad = result.firstBadSeq { members["first_bad_seq"] = .number(Double(bad)) }
        if let reason = result.reason { members["reason"] = .string(reason) }
        // The chain checks itself; only a signed checkpoint shows a cut tail or a chain
        // rewritten end to end.
        if let latest = try await handle.store.checkpoints(tenant: handle.tenant.id, limit: 1).first {
            let check = latest.check(hashAtSeq: try await handle.store.hash(tenant: handle.tenant.id, seq: latest.seq))
            let signed = latest.isSigned(by: signer.publicKey)
            members["checkpoint"] = .object([
                JSONValue.Member("seq", .number(Double(latest.seq))),
                JSONValue.Member("signed_at", .string(latest.signedAt)),
                JSONValue.Member("signature_valid", .bool(signed)),
                JSONValue.Member("result", .string(check.rawValue)),
            ])
            if check != .consistent || !signed {
                members["ok"] = .bool(false)
                if members["first_bad_seq"] == nil, check != .consistent {
                    members["first_bad_seq"] = .number(Double(check == .truncated ? min(result.headSeq + 1, latest.seq) : latest.seq))
                }
            }
        }
        return Response(status: .ok, headers: [.contentType: "application/json"],
                        body: .init(byteBuffer: ByteBuffer(bytes: CanonicalJSON.serialize(.object(members.map { JSONValue.Member($0.key, $0.value) })))))
    }

    struct SecurityItem: Encodable {
        let id: Int64
        let kind: String
        let firstSeen: Date
        let lastSeen: Date
        let attempts: Int
        let method: String
        let route: String
        let requestId: String?
    }

    /// Attempts against this tenant, newest first. Who made them (another tenant's key) is the
    /// platform's to know, not this tenant's: the wall does not tell tenants about each other.
    func securityEvents(_ request: Request, _ context: TenantRequestContext) async throws -> Response {
        let query = try QueryParameters(request, allowed: ["limit", "cursor"])
        let limit = try Pagination.limit(query, default: 50, maximum: 500)
        let before = try Pagination.cursor(query).map { cursor -> Int64 in
            guard let id = Int64(cursor) else { throw Problem.badRequest("The cursor is not one this server issued.") }
            return id
        } ?? Int64.max
        let items = try await securityEvents.attempts(against: context.tenant.id, before: before, limit: limit + 1).map { row in
            SecurityItem(id: row.id, kind: row.kind, firstSeen: row.firstSeen, lastSeen: row.lastSeen, attempts: row.attempts,
                         method: row.method, route: row.route, requestId: row.requestID)
        }
        let page = Array(items.prefix(limit))
        return try JSONResponse.make(ListPage(items: page, nextCursor: items.count > limit ? page.last.map { Pagination.encode(String($0.id)) } : nil))
    }
}
