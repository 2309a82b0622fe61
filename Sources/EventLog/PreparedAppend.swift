import Database
import Foundation
import Logging
import PostgresNIO

/// An append validated and serialized before any lock is taken, so that the work done while
/// holding the tenant's head row is only: read versions, hash, insert.
struct PreparedAppend: Sendable {
    struct Event: Sendable {
        let streamIndex: Int
        let type: String
        let canonicalType: [UInt8]
        let schemaVersion: Int
        let data: JSONValue
        let canonicalData: [UInt8]
    }

    let tenant: TenantID
    let appends: [StreamAppend]
    let events: [Event]
    let canonicalMetadata: [UInt8]
    let metadata: JSONValue

    init(tenant: TenantID, appends: [StreamAppend], metadata: EventMetadata) throws(EventLogError) {
        guard !appends.isEmpty, appends.allSatisfy({ !$0.events.isEmpty }) else {
            throw EventLogError(.emptyAppend, "an append needs at least one event for each stream")
        }
        guard Set(appends.map(\.stream)).count == appends.count else {
            throw EventLogError(.invalidStream, "a stream appears twice in one append; merge its events")
        }
        var events: [Event] = []
        for (index, append) in appends.enumerated() {
            for event in append.events {
                guard Self.isValidEventType(event.type) else {
                    throw EventLogError(.invalidEvent, "event type '\(event.type.prefix(80))' must match [A-Za-z][A-Za-z0-9_.]{0,127}")
                }
                guard (1...Int(Int16.max)).contains(event.schemaVersion) else {
                    throw EventLogError(.invalidEvent, "\(event.type): schema version must be from 1 to \(Int16.max)")
                }
                guard event.data.isObject else {
                    throw EventLogError(.invalidEvent, "\(event.type): event data must be a JSON object")
                }
                let data = CanonicalJSON.serialize(event.data)
                guard data.count <= NewEvent.maximumDataSize else {
                    throw EventLogError(.eventTooLarge, "\(event.type): data is \(data.count) bytes, over the limit of \(NewEvent.maximumDataSize)")
                }
                // PostgreSQL's jsonb cannot hold U+0000; refuse it here rather than half-way.
                guard !data.containsNullEscape else {
                    throw EventLogError(.invalidEvent, "\(event.type): strings in event data may not contain U+0000")
                }
                events.append(Event(streamIndex: index, type: event.type, canonicalType: CanonicalJSON.serialize(.string(event.type)),
                                    schemaVersion: event.schemaVersion, data: event.data, canonicalData: data))
            }
        }
        let metadataBytes = CanonicalJSON.serialize(metadata.json)
        guard metadataBytes.count <= 16 * 1024, !metadataBytes.containsNullEscape else {
            throw EventLogError(.invalidEvent, "event metadata must be under 16 KiB and free of U+0000")
        }
        self.tenant = tenant
        self.appends = appends
        self.events = events
        self.canonicalMetadata = metadataBytes
        self.metadata = metadata.json
    }

    static func isValidEventType(_ type: String) -> Bool {
        let bytes = Array(type.utf8)
        guard (1...128).contains(bytes.count) else { return false }
        func isLetter(_ byte: UInt8) -> Bool {
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
        }
        return isLetter(bytes[0]) && bytes.allSatisfy {
            isLetter($0) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".")
        }
    }

    var statement: AppendEvents {
        var statement = AppendEvents(metadata: String(decoding: canonicalMetadata, as: UTF8.self))
        for append in appends {
            statement.streamTypes.append(append.stream.type)
            statement.streamIDs.append(append.stream.id)
            switch append.expected {
            case .any: statement.expected.append(-1)
            case .noStream: statement.expected.append(0)
            case .exact(let version): statement.expected.append(Int32(clamping: max(version, 0)))
            }
        }
        for event in events {
            statement.eventStreams.append(Int32(event.streamIndex + 1))
            statement.eventTypes.append(event.type)
            statement.eventTypeJSON.append(String(decoding: event.canonicalType, as: UTF8.self))
            statement.schemaVersions.append(Int16(event.schemaVersion))
            statement.data.append(String(decoding: event.canonicalData, as: UTF8.self))
        }
        return statement
    }

    /// Runs the append as one statement in the session's transaction, a wrong expected version
    /// coming back as `.conflict` with nothing written and the transaction still usable; what
    /// was appended comes back with its events as recorded.
    func runChecked(in session: TenantSession) async throws -> AppendAttempt {
        guard let (first, last, head, recordedAt, versions, conflict, previous, hashes) = try await session.call(AppendEventsChecked(append: statement)).first
        else { throw EventLogError(.storage, "the append returned no result") }
        if let conflict {
            let index = Int(conflict) - 1
            guard appends.indices.contains(index), versions.indices.contains(index) else {
                throw EventLogError(.storage, "the append reported a conflict on stream \(conflict) of \(appends.count)")
            }
            let append = appends[index]
            let expected = switch append.expected {
            case .any: "any"
            case .noStream: "0"
            case .exact(let version): "\(version)"
            }
            let actual = Int(versions[index])
            return .conflict(EventLogError(
                .wrongExpectedVersion, "stream \(append.stream.type)-\(append.stream.id.uuidString.lowercased()) is at version \(actual), not \(expected)",
                actualVersion: actual))
        }
        guard let first, let last, let head, let recordedAt, let previous, let hashes, hashes.readableBytes == 32 * events.count,
              last - first + 1 == Int64(events.count)
        else { throw EventLogError(.storage, "the append returned an incomplete result") }
        let result = AppendResult(tenant: tenant, firstSeq: first, lastSeq: last, streamVersions: versions.map(Int.init),
                                  headHash: Array(buffer: head), recordedAt: recordedAt)
        // Each stream's version before the append, counted forward event by event as the function does.
        var versionOf = appends.indices.map { index in
            versions[index] - Int32(events.count(where: { $0.streamIndex == index }))
        }
        var recorded: [RecordedEvent] = []
        var prevHash = Array(buffer: previous)
        for (offset, event) in events.enumerated() {
            versionOf[event.streamIndex] += 1
            let hash = hashes.getBytes(at: hashes.readerIndex + 32 * offset, length: 32) ?? []
            recorded.append(RecordedEvent(
                tenant: tenant, seq: first + Int64(offset), stream: appends[event.streamIndex].stream,
                streamVersion: Int(versionOf[event.streamIndex]), type: event.type, schemaVersion: event.schemaVersion,
                data: event.data, metadataJSON: metadata, recordedAtText: recordedAt, prevHash: prevHash, hash: hash))
            prevHash = hash
        }
        return .appended(result, recorded)
    }

    func result(_ row: AppendEvents.Row?) throws -> AppendResult {
        guard let (first, last, head, recordedAt, versions) = row else {
            throw EventLogError(.storage, "the append returned no result")
        }
        return AppendResult(
            tenant: tenant, firstSeq: first, lastSeq: last, streamVersions: versions.map(Int.init),
            headHash: Array(buffer: head), recordedAt: recordedAt
        )
    }

    /// The conflict raised by append_events (SQLSTATE PT409), as a typed error.
    static func conflict(from error: PSQLError) -> EventLogError? {
        guard error.serverInfo?[.sqlState] == "PT409" else { return nil }
        return EventLogError(
            .wrongExpectedVersion, error.serverInfo?[.message] ?? "wrong expected version",
            actualVersion: error.serverInfo?[.detail].flatMap { Int($0) }
        )
    }
}

/// What a checked append did.
public enum AppendAttempt: Sendable {
    /// Appended: the result, and the events as recorded, in seq order.
    case appended(AppendResult, [RecordedEvent])
    /// Not appended: a stream was not at the expected version (`EventLogError.wrongExpectedVersion`).
    case conflict(EventLogError)
}

extension Array where Element == UInt8 {
    /// Whether canonical JSON bytes contain the escape `\u0000`.
    var containsNullEscape: Bool {
        let pattern = Array(#"\u0000"#.utf8)
        guard count >= pattern.count else { return false }
        var index = 0
        while index <= count - pattern.count {
            if self[index] == UInt8(ascii: "\\") {
                if self[index + 1] == UInt8(ascii: "\\") { index += 2; continue }
                if Array(self[index..<(index + pattern.count)]) == pattern { return true }
            }
            index += 1
        }
        return false
    }
}
