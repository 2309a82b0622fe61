import Database
import Foundation

/// A typed event: its name in the log and the version of its JSON shape.
///
/// Bump `schemaVersion` when the shape changes, and register an `Upcaster` from the old version,
/// so stored events keep reading as the current type.
public protocol EventPayload: Codable, Sendable {
    static var eventType: String { get }
    static var schemaVersion: Int { get }
}

/// An event to append: its type, shape version and data (a JSON object).
public struct NewEvent: Sendable, Equatable {
    public let type: String
    public let schemaVersion: Int
    public let data: JSONValue

    /// The most data one event may carry, in canonical JSON bytes.
    public static let maximumDataSize = 1 << 20

    public init(type: String, schemaVersion: Int = 1, data: JSONValue) {
        self.type = type
        self.schemaVersion = schemaVersion
        self.data = data
    }

    /// Encodes a typed event (snake_case keys, ISO 8601 dates).
    public init<Payload: EventPayload>(_ payload: Payload) throws(EventLogError) {
        let data: Data
        do {
            data = try EventCoding.encoder.encode(payload)
        } catch {
            throw EventLogError(.invalidEvent, "\(Payload.eventType) does not encode as JSON: \(error)")
        }
        let value: JSONValue
        do {
            value = try CanonicalJSON.parse(data)
        } catch {
            throw EventLogError(.invalidEvent, "\(Payload.eventType) does not encode as JSON: \(error)")
        }
        self.init(type: Payload.eventType, schemaVersion: Payload.schemaVersion, data: value)
    }
}

/// An event as stored: where it sits in the tenant's log and its stream, and its place in the chain.
public struct RecordedEvent: Sendable, Equatable {
    public let tenant: TenantID
    public let seq: Int64
    public let stream: StreamName
    public let streamVersion: Int
    public let type: String
    public let schemaVersion: Int
    public let data: JSONValue
    public let metadataJSON: JSONValue
    /// RFC 3339 UTC with microseconds, exactly as hashed.
    public let recordedAtText: String
    public let prevHash: [UInt8]
    public let hash: [UInt8]

    public var metadata: EventMetadata { EventMetadata(json: metadataJSON) }

    public var recordedAt: Date { Timestamps.parse(recordedAtText) ?? .distantPast }

    /// The bytes this event's hash covers; see `CanonicalEvent`.
    public var canonicalBytes: [UInt8] {
        CanonicalEvent.bytes(
            tenant: tenant, seq: seq, stream: stream, streamVersion: streamVersion, type: type,
            schemaVersion: schemaVersion, data: data, metadata: metadataJSON, recordedAt: recordedAtText
        )
    }
}

public enum EventCoding {
    public static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.dateEncodingStrategy = .custom { date, encoder in
            var container = encoder.singleValueContainer()
            try container.encode(Timestamps.format(date))
        }
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()

    public static let decoder: JSONDecoder = {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        decoder.dateDecodingStrategy = .custom { decoder in
            let text = try decoder.singleValueContainer().decode(String.self)
            guard let date = Timestamps.parse(text) else {
                throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "not an RFC 3339 time: \(text)"))
            }
            return date
        }
        return decoder
    }()
}

/// RFC 3339 UTC times with microseconds, the form the log stores and hashes.
public enum Timestamps {
    /// The times a caller may name (`as_of`, `from`, `to`, the CLI's `--at`): from the Unix epoch,
    /// before which no log has an event, to the last instant RFC 3339 can write. Outside it a time
    /// cannot be compared with the log: PostgreSQL has no year 0000, and Foundation reads years
    /// before 1582 in the Julian calendar, so `0001-01-01T00:00:00Z` arrives as 0000-12-30.
    public static let acceptedRange = Date(timeIntervalSince1970: 0)...Date(timeIntervalSince1970: 253_402_300_799)

    /// `acceptedRange` in words, for error messages.
    public static let acceptedRangeText = "1970-01-01T00:00:00Z to 9999-12-31T23:59:59Z"

    /// Days since 1970-01-01 a caller may name (the analytics' `from` and `to`), as `acceptedRange`.
    public static let acceptedDays: ClosedRange<Int64> = 0...2_932_896

    /// A time as a bound on `recorded_at`, brought into `acceptedRange` first: no event lies
    /// outside it, so the selection is the same, and the text is one PostgreSQL can read.
    public static func bound(_ date: Date) -> String {
        format(min(max(date, acceptedRange.lowerBound), acceptedRange.upperBound))
    }

    public static func format(_ date: Date) -> String {
        let micros = Int64((date.timeIntervalSince1970 * 1_000_000).rounded())
        return format(microseconds: micros)
    }

    /// Days since 1970-01-01 of a time, in UTC.
    public static func dayNumber(of date: Date) -> Int64 {
        Int64((date.timeIntervalSince1970 / 86_400).rounded(.down))
    }

    /// `YYYY-MM-DD` of a day number.
    public static func dayText(_ day: Int64) -> String {
        String(format(microseconds: day * 86_400_000_000).prefix(10))
    }

    public static func format(microseconds: Int64) -> String {
        var seconds = micros(floorDiv: microseconds)
        let fraction = microseconds - seconds * 1_000_000
        let days = floorDiv(seconds, 86_400)
        seconds -= days * 86_400
        let (year, month, day) = civil(fromDays: days)
        // Digits written directly: `String(format:)` goes through CoreFoundation and dynamic
        // casts per argument, which made it most of the cost of a list of pets.
        return String(unsafeUninitializedCapacity: 27) { buffer in
            var index = 0
            func put(_ value: Int64, width: Int) {
                var value = value
                for offset in stride(from: width - 1, through: 0, by: -1) {
                    buffer[index + offset] = UInt8(ascii: "0") + UInt8(truncatingIfNeeded: value % 10)
                    value /= 10
                }
                index += width
            }
            func mark(_ character: Unicode.Scalar) {
                buffer[index] = UInt8(ascii: character)
                index += 1
            }
            put(year, width: 4); mark("-"); put(month, width: 2); mark("-"); put(day, width: 2); mark("T")
            put(seconds / 3600, width: 2); mark(":"); put(seconds % 3600 / 60, width: 2); mark(":"); put(seconds % 60, width: 2)
            mark("."); put(fraction, width: 6); mark("Z")
            return index
        }
    }

    private static func micros(floorDiv value: Int64) -> Int64 { floorDiv(value, 1_000_000) }

    private static func floorDiv(_ a: Int64, _ b: Int64) -> Int64 {
        a >= 0 ? a / b : -((-a + b - 1) / b)
    }

    /// Howard Hinnant's days-to-civil: exact for every day of the proleptic Gregorian calendar.
    private static func civil(fromDays days: Int64) -> (Int64, Int64, Int64) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let mp = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }

    /// Microseconds since 1970 of a time in exactly the stored form (`2026-01-02T03:04:05.123456Z`),
    /// without a general parser: the projector computes lags from it for every event.
    public static func microseconds(ofStored text: String) -> Int64? {
        let bytes = Array(text.utf8)
        guard bytes.count == 27, bytes[4] == UInt8(ascii: "-"), bytes[10] == UInt8(ascii: "T"), bytes[19] == UInt8(ascii: "."),
              bytes[26] == UInt8(ascii: "Z") else { return nil }
        func number(_ range: Range<Int>) -> Int64? {
            var value: Int64 = 0
            for index in range {
                let digit = bytes[index] &- UInt8(ascii: "0")
                guard digit < 10 else { return nil }
                value = value * 10 + Int64(digit)
            }
            return value
        }
        guard let year = number(0..<4), let month = number(5..<7), let day = number(8..<10), let hour = number(11..<13),
              let minute = number(14..<16), let second = number(17..<19), let micros = number(20..<26) else { return nil }
        // Howard Hinnant's days-from-civil.
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        let days = era * 146_097 + dayOfEra - 719_468
        return ((days * 86_400 + hour * 3600 + minute * 60 + second) * 1_000_000) + micros
    }

    /// Parses RFC 3339 (`Z` or an offset, optional fraction up to nanoseconds).
    public static func parse(_ text: String) -> Date? {
        let strategies: [Date.ISO8601FormatStyle] = [
            .iso8601.year().month().day().dateSeparator(.dash).time(includingFractionalSeconds: true).timeSeparator(.colon).timeZone(separator: .colon),
            .iso8601.year().month().day().dateSeparator(.dash).time(includingFractionalSeconds: false).timeSeparator(.colon).timeZone(separator: .colon),
        ]
        for strategy in strategies {
            if let date = try? strategy.parse(text) { return date }
        }
        return nil
    }
}

extension RecordedEvent {
    /// This event with `data` in place of what was stored, for decoding only: its hashes cover
    /// the stored data, not this (personal fields opened from their sealed form, say).
    public func decodingView(data: JSONValue) -> RecordedEvent {
        RecordedEvent(
            tenant: tenant, seq: seq, stream: stream, streamVersion: streamVersion, type: type, schemaVersion: schemaVersion,
            data: data, metadataJSON: metadataJSON, recordedAtText: recordedAtText, prevHash: prevHash, hash: hash
        )
    }
}
