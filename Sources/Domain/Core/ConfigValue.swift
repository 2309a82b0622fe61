import Foundation

/// Any JSON value, as a tenant's configuration holds it.
public indirect enum ConfigValue: Sendable, Equatable, Codable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([ConfigValue])
    case object([String: ConfigValue])

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([ConfigValue].self) {
            self = .array(value)
        } else if let value = try? container.decode([String: ConfigValue].self) {
            self = .object(value)
        } else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "not a JSON value")
        }
    }

    /// Objects go through a string-keyed dictionary rather than a keyed container: JSON encoders
    /// apply their key strategy (the event log's snake_case) to keyed containers, which would
    /// rewrite the tenant's own keys, and they keep no insertion order there anyway. Key order is
    /// therefore the encoder's: deterministic output needs `.sortedKeys`, as the event log and
    /// `encodedSize` use.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .number(let value): try container.encode(value)
        case .string(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }

    /// The size in bytes of this value's JSON encoding with sorted keys.
    ///
    /// A value JSON cannot represent (a NaN or infinite number) reports `Int.max`, so that size
    /// limits refuse it rather than let it reach an encoder that would throw later.
    public var encodedSize: Int {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        guard let data = try? encoder.encode(self) else { return Int.max }
        return data.count
    }

    /// Whether a string or an object key anywhere inside holds U+0000, which JSON can escape
    /// (`\u0000`) but PostgreSQL's `jsonb` and `text` cannot store.
    public var containsNUL: Bool {
        switch self {
        case .null, .bool, .number: false
        case .string(let value): value.unicodeScalars.contains("\u{0}")
        case .array(let values): values.contains(where: \.containsNUL)
        case .object(let members): members.contains { $0.key.unicodeScalars.contains("\u{0}") || $0.value.containsNUL }
        }
    }

    /// Whether every number inside is finite, the only numbers JSON can carry.
    public var isRepresentableAsJSON: Bool {
        switch self {
        case .null, .bool, .string: true
        case .number(let value): value.isFinite
        case .array(let values): values.allSatisfy(\.isRepresentableAsJSON)
        case .object(let members): members.values.allSatisfy(\.isRepresentableAsJSON)
        }
    }
}
