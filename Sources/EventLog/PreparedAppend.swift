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
        let canonicalData: [UInt8]
    }

    let tenant: TenantID
    let appends: [StreamAppend]
    let events: [Event]
    let canonicalMetadata: [UInt8]

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
                                    schemaVersion: event.schemaVersion, canonicalData: data))
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

    func run(on connection: PostgresConnection, logger: Logger) async throws -> AppendResult {
        let begin = BeginAppend(tenant: tenant.rawValue, streamTypes: appends.map(\.stream.type), streamIDs: appends.map(\.stream.id))
        guard let (lastSeq, headHash, recordedAt, versions) = try await connection.execute(begin, logger: logger).first(where: { _ in true }) else {
            throw EventLogError(.storage, "the tenant's log head could not be locked")
        }
        var streamVersions = versions.map(Int.init)
        for (index, append) in appends.enumerated() where !append.expected.admits(streamVersions[index]) {
            throw EventLogError(
                .wrongExpectedVersion,
                "stream \(append.stream) is at version \(streamVersions[index]), not \(append.expected)",
                actualVersion: streamVersions[index]
            )
        }

        let tenantText = tenant.description
        var statement = InsertEvents(tenant: tenant.rawValue, metadata: String(decoding: canonicalMetadata, as: UTF8.self), recordedAt: recordedAt)
        var previous = Array(buffer: headHash)
        var seq = lastSeq
        for event in events {
            seq += 1
            streamVersions[event.streamIndex] += 1
            let stream = appends[event.streamIndex].stream
            let streamID = stream.id.uuidString.lowercased()
            let canonical = CanonicalEvent.bytes(
                tenant: tenantText, seq: seq, streamType: stream.type, streamID: streamID,
                streamVersion: streamVersions[event.streamIndex], type: event.canonicalType, schemaVersion: event.schemaVersion,
                canonicalData: event.canonicalData, canonicalMetadata: canonicalMetadata, recordedAt: recordedAt
            )
            let hash = CanonicalEvent.hash(previous: previous, canonical: canonical)
            statement.seqs.append(seq)
            statement.streamTypes.append(stream.type)
            statement.streamIDs.append(stream.id)
            statement.streamVersions.append(Int32(streamVersions[event.streamIndex]))
            statement.eventTypes.append(event.type)
            statement.schemaVersions.append(Int16(event.schemaVersion))
            statement.data.append(String(decoding: event.canonicalData, as: UTF8.self))
            statement.prevHashes.append(ByteBuffer(bytes: previous))
            statement.hashes.append(ByteBuffer(bytes: hash))
            previous = hash
        }
        statement.lastSeq = seq
        statement.headHash = ByteBuffer(bytes: previous)
        let moved = try await connection.execute(statement, logger: logger).first(where: { _ in true })
        guard moved == seq else {
            throw EventLogError(.storage, "the tenant's log head did not move to \(seq)")
        }
        return AppendResult(
            tenant: tenant, firstSeq: lastSeq + 1, lastSeq: seq, streamVersions: streamVersions,
            headHash: previous, recordedAt: recordedAt
        )
    }
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
