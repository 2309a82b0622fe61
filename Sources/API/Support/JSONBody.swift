import Domain
import EventLog
import Foundation
import Hummingbird
import NIOCore

/// A request body that must be one JSON object with known members.
///
/// Parsing is strict (RFC 8259 plus: no duplicate keys, valid UTF-8, bounded depth), unknown
/// members are refused by name, and every field problem is collected so the client learns all of
/// them from one 400.
struct JSONBody {
    let object: JSONValue
    private(set) var errors: [Problem.FieldError] = []

    static func read(_ request: Request, context: some RequestContext, allowed: Set<String>) async throws -> JSONBody {
        let buffer: ByteBuffer
        do {
            buffer = try await request.body.collect(upTo: context.maxUploadSize)
        } catch {
            throw Problem(type: Problem.typeBase + "payload-too-large", title: "Content Too Large", status: .contentTooLarge,
                          detail: "The request body is larger than \(context.maxUploadSize / 1024) KiB.")
        }
        // A body must say what it is; only an empty one may come without Content-Type (and is
        // then refused below as no JSON).
        if request.headers[.contentType] != nil || buffer.readableBytes > 0 {
            try MediaType.requireJSON(request.headers[.contentType])
        }
        let value: JSONValue
        do {
            value = try CanonicalJSON.parse(buffer.readableBytesView)
        } catch {
            throw Problem.badRequest("The body is not valid JSON: \(error.reason) at byte \(error.offset).")
        }
        guard case .object(let members) = value else {
            throw Problem.badRequest("The body must be a JSON object.")
        }
        let unknown = members.map(\.key).filter { !allowed.contains($0) }.sorted()
        if !unknown.isEmpty {
            // Listed up to a bound, as unknown query parameters are: a 64 KiB body of unknown
            // members must not make an answer several times its size.
            let (listed, text) = QueryParameters.listing(unknown)
            throw Problem.badRequest("Unknown field(s): \(text).", errors: listed.map { .init(field: $0, message: "is not a known field") })
        }
        return JSONBody(object: value)
    }

    func has(_ key: String) -> Bool { object[key] != nil }

    /// A string member; nil when absent (recording an error when required) or of another type.
    /// `nullable: false` refuses an explicit null (a field that can be changed but not cleared).
    mutating func string(_ key: String, required: Bool = false, nullable: Bool = true) -> String? {
        switch object[key] {
        case .string(let value): return value
        case nil:
            if required { errors.append(.init(field: key, message: "is required")) }
            return nil
        case .null?:
            if required { errors.append(.init(field: key, message: "is required")) }
            else if !nullable { errors.append(.init(field: key, message: "cannot be null")) }
            return nil
        default:
            errors.append(.init(field: key, message: "must be a string"))
            return nil
        }
    }

    /// Throws 400 with every problem found so far.
    func finish() throws {
        guard errors.isEmpty else {
            throw Problem.badRequest("The request body has invalid fields.", errors: errors)
        }
    }
}

/// JSON responses: snake_case keys, RFC 3339 UTC times, sorted keys for stable bodies.
enum JSONResponse {
    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .custom { date, encoder in
            var container = encoder.singleValueContainer()
            try container.encode(Timestamps.format(date))
        }
        return encoder
    }()

    static func body(_ value: some Encodable) throws -> ByteBuffer {
        ByteBuffer(data: try encoder.encode(value))
    }

    static func make(_ value: some Encodable, status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) throws -> Response {
        var headers = headers
        headers[.contentType] = "application/json"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(data: try encoder.encode(value))))
    }
}

extension JSONBody {
    /// A member that may be absent (unchanged), null (cleared) or a string (set).
    mutating func nullableString(_ key: String) -> FieldChange<String> {
        switch object[key] {
        case nil: return .unchanged
        case .null?: return .clear
        case .string(let value)?: return .set(value)
        default:
            errors.append(.init(field: key, message: "must be a string or null"))
            return .unchanged
        }
    }
}
