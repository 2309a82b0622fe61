import Database
import Foundation

/// A stream: a category (`pet`, `tenant`, `config`, …) and an id within it.
public struct StreamName: Hashable, Sendable, CustomStringConvertible {
    public let type: String
    public let id: UUID

    /// Categories are short lowercase words, so they are safe in logs and URLs.
    public init(type: String, id: UUID) throws(EventLogError) {
        guard Self.isValidType(type) else {
            throw EventLogError(.invalidStream, "stream type '\(type.prefix(80))' must match [a-z][a-z0-9_]{0,62}")
        }
        self.type = type
        self.id = id
    }

    static func isValidType(_ type: String) -> Bool {
        let bytes = Array(type.utf8)
        guard (1...63).contains(bytes.count), (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(bytes[0]) else { return false }
        return bytes.allSatisfy {
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains($0) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) || $0 == UInt8(ascii: "_")
        }
    }

    public var description: String { "\(type)-\(id.uuidString.lowercased())" }
}

/// What the caller believes about a stream before appending to it.
public enum ExpectedVersion: Sendable, Equatable, CustomStringConvertible {
    /// No check.
    case any
    /// The stream must not exist yet.
    case noStream
    /// The stream must be exactly at this version (its last event's version).
    case exact(Int)

    func admits(_ actual: Int) -> Bool {
        switch self {
        case .any: true
        case .noStream: actual == 0
        case .exact(let version): actual == version
        }
    }

    public var description: String {
        switch self {
        case .any: "any"
        case .noStream: "no stream"
        case .exact(let version): "version \(version)"
        }
    }
}

/// Who caused an event and in answer to what. Stored with every event and covered by its hash.
public struct EventMetadata: Sendable, Equatable, Codable {
    public var actor: String?
    public var requestID: String?
    public var correlationID: String?
    public var causationID: String?

    public init(actor: String? = nil, requestID: String? = nil, correlationID: String? = nil, causationID: String? = nil) {
        self.actor = actor
        self.requestID = requestID
        self.correlationID = correlationID
        self.causationID = causationID
    }

    enum CodingKeys: String, CodingKey {
        case actor
        case requestID = "request_id"
        case correlationID = "correlation_id"
        case causationID = "causation_id"
    }

    var json: JSONValue {
        var members: [JSONValue.Member] = []
        if let actor { members.append(.init("actor", .string(actor))) }
        if let requestID { members.append(.init("request_id", .string(requestID))) }
        if let correlationID { members.append(.init("correlation_id", .string(correlationID))) }
        if let causationID { members.append(.init("causation_id", .string(causationID))) }
        return .object(members)
    }

    init(json: JSONValue) {
        self.init(
            actor: json["actor"]?.stringValue, requestID: json["request_id"]?.stringValue,
            correlationID: json["correlation_id"]?.stringValue, causationID: json["causation_id"]?.stringValue
        )
    }
}
