import Foundation

/// Turns the data of an event stored at an older schema version into the next version's shape.
public struct Upcaster: Sendable {
    public let eventType: String
    /// The version this upcaster reads; it produces `fromVersion + 1`.
    public let fromVersion: Int
    public let transform: @Sendable (JSONValue) throws -> JSONValue

    public init(eventType: String, fromVersion: Int, transform: @escaping @Sendable (JSONValue) throws -> JSONValue) {
        self.eventType = eventType
        self.fromVersion = fromVersion
        self.transform = transform
    }
}

/// The event types a reader understands, by name, with the upcasters that bring stored older
/// versions up to the current one.
public struct EventTypeRegistry: Sendable {
    private struct Entry: Sendable {
        let currentVersion: Int
        let decode: @Sendable (Data) throws -> any EventPayload
    }

    private var entries: [String: Entry] = [:]
    private var upcasters: [String: [Int: Upcaster]] = [:]

    public init() {}

    public mutating func register<Payload: EventPayload>(_ type: Payload.Type) {
        entries[Payload.eventType] = Entry(currentVersion: Payload.schemaVersion) { data in
            try EventCoding.decoder.decode(Payload.self, from: data)
        }
    }

    public mutating func register(_ upcaster: Upcaster) {
        upcasters[upcaster.eventType, default: [:]][upcaster.fromVersion] = upcaster
    }

    public func isRegistered(_ eventType: String) -> Bool { entries[eventType] != nil }

    /// The data of a stored event in the current version's shape.
    public func upcast(type: String, schemaVersion: Int, data: JSONValue) throws(EventLogError) -> JSONValue {
        guard let entry = entries[type] else {
            throw EventLogError(.unknownEventType, "unknown event type '\(type)': no decoder is registered for it")
        }
        guard schemaVersion <= entry.currentVersion else {
            throw EventLogError(.upcastFailed, "\(type) v\(schemaVersion) is newer than this build's v\(entry.currentVersion)")
        }
        var version = schemaVersion
        var value = data
        while version < entry.currentVersion {
            guard let upcaster = upcasters[type]?[version] else {
                throw EventLogError(.upcastFailed, "no upcaster for \(type) from v\(version) to v\(version + 1)")
            }
            do {
                value = try upcaster.transform(value)
            } catch {
                throw EventLogError(.upcastFailed, "upcasting \(type) from v\(version) failed: \(error)")
            }
            version += 1
        }
        return value
    }

    /// The stored event as its current Swift type.
    public func decode(_ event: RecordedEvent) throws(EventLogError) -> any EventPayload {
        let data = try upcast(type: event.type, schemaVersion: event.schemaVersion, data: event.data)
        guard let entry = entries[event.type] else {
            throw EventLogError(.unknownEventType, "unknown event type '\(event.type)'")
        }
        do {
            return try entry.decode(Data(CanonicalJSON.serialize(data)))
        } catch {
            throw EventLogError(.decodingFailed, "event \(event.seq) (\(event.type)) does not decode: \(error)")
        }
    }
}
