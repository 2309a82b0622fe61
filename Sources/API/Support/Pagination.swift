import Foundation
import Hummingbird

/// `limit` and opaque `cursor` query parameters, checked. A cursor decodes to what this server
/// put in it (a seq, an id, a slug), never to control characters.
enum Pagination {
    static func limit(_ query: QueryParameters, default defaultLimit: Int, maximum: Int) throws -> Int {
        guard let raw = query["limit"] else { return defaultLimit }
        guard let limit = Int(raw), (1...maximum).contains(limit) else {
            throw Problem.badRequest("limit must be a whole number from 1 to \(maximum).",
                                     errors: [.init(field: "limit", message: "must be from 1 to \(maximum)")])
        }
        return limit
    }

    /// The decoded cursor, or nil when absent; a cursor we did not issue is a 400.
    static func cursor(_ query: QueryParameters) throws -> String? {
        guard let raw = query["cursor"] else { return nil }
        guard let value = decode(raw) else {
            throw Problem.badRequest("The cursor is not one this server issued.", errors: [.init(field: "cursor", message: "is invalid")])
        }
        return value
    }

    static func encode(_ value: String) -> String {
        Data(("v1:" + value).utf8).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    static func decode(_ cursor: String) -> String? {
        var base64 = cursor.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while base64.count % 4 != 0 { base64 += "=" }
        guard cursor.count <= 512, let data = Data(base64Encoded: base64), let text = String(data: data, encoding: .utf8),
              text.hasPrefix("v1:"), !text.unicodeScalars.contains(where: QueryParameters.isControl) else { return nil }
        return String(text.dropFirst(3))
    }
}

/// A page of a list: `{"items": [...], "next_cursor": "..." | null}`.
struct ListPage<Item: Encodable>: Encodable {
    let items: [Item]
    let nextCursor: String?

    enum CodingKeys: String, CodingKey { case items, nextCursor }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(items, forKey: .items)
        // Present even when null: clients test for it rather than for its absence.
        try container.encode(nextCursor, forKey: .nextCursor)
    }
}
