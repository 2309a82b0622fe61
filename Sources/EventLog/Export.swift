import Crypto
import Database
import Foundation

/// The export file: NDJSON, a header line, one line per event (canonical JSON with its hashes),
/// and a last line with the tenant's latest signed checkpoint and the key that signed it.
/// `ExportVerifier` checks one with no database.
public enum ExportFormat {
    public static let name = "petstore-events"
    public static let version = 1

    public static func header(tenant: TenantID, slug: String, exportedAt: Date) -> [UInt8] {
        CanonicalJSON.serialize(.object([
            JSONValue.Member("export", .string(name)),
            JSONValue.Member("exported_at", .string(Timestamps.format(exportedAt))),
            JSONValue.Member("slug", .string(slug)),
            JSONValue.Member("tenant", .string(tenant.description)),
            JSONValue.Member("version", .number(Double(version))),
        ]))
    }

    public static func line(_ event: RecordedEvent) -> [UInt8] {
        CanonicalJSON.serialize(.object([
            JSONValue.Member("data", event.data),
            JSONValue.Member("hash", .string(event.hash.hexString)),
            JSONValue.Member("metadata", event.metadataJSON),
            JSONValue.Member("prev_hash", .string(event.prevHash.hexString)),
            JSONValue.Member("recorded_at", .string(event.recordedAtText)),
            JSONValue.Member("schema_version", .number(Double(event.schemaVersion))),
            JSONValue.Member("seq", .number(Double(event.seq))),
            JSONValue.Member("stream", .string(event.stream.description)),
            JSONValue.Member("stream_version", .number(Double(event.streamVersion))),
            JSONValue.Member("type", .string(event.type)),
        ]))
    }

    public static func trailer(_ checkpoint: Checkpoint, publicKey: Curve25519.Signing.PublicKey) -> [UInt8] {
        CanonicalJSON.serialize(.object([
            JSONValue.Member("checkpoint", .object([
                JSONValue.Member("head_hash", .string(checkpoint.headHash.hexString)),
                JSONValue.Member("key_id", .string(checkpoint.keyID)),
                JSONValue.Member("seq", .number(Double(checkpoint.seq))),
                JSONValue.Member("signature", .string(checkpoint.signature.hexString)),
                JSONValue.Member("signed_at", .string(checkpoint.signedAt)),
                JSONValue.Member("tenant", .string(checkpoint.tenant.description)),
            ])),
            JSONValue.Member("public_key", .string(publicKey.rawRepresentation.base64EncodedString())),
        ]))
    }
}

/// Checks an export offline: the header, every event's hash and link, and the checkpoint's
/// signature and agreement with the events. Feed it lines in order, then `finish()`.
public struct ExportVerifier {
    public struct Failure: Error, Equatable, CustomStringConvertible {
        /// The first event that is wrong, when one is.
        public let seq: Int64?
        public let reason: String
        public var description: String { seq.map { "seq \($0): \(reason)" } ?? reason }
    }

    public struct Report: Equatable {
        public let tenant: TenantID
        public let firstSeq: Int64?
        public let lastSeq: Int64?
        public let events: Int
        public let checkpointSeq: Int64
        public let keyID: String
    }

    /// A key the auditor trusts: the export's own key must be it.
    let pinnedKey: Curve25519.Signing.PublicKey?
    var tenant: TenantID?
    var chain: ChainVerifier?
    var hashes: [Int64: [UInt8]] = [:]
    var firstSeq: Int64?
    var lastSeq: Int64?
    var count = 0
    var trailer: JSONValue?
    var lineNumber = 0

    public init(pinnedKey: Curve25519.Signing.PublicKey? = nil) {
        self.pinnedKey = pinnedKey
    }

    public mutating func feed(_ line: some Collection<UInt8>) throws(Failure) {
        lineNumber += 1
        guard trailer == nil else { throw Failure(seq: nil, reason: "line \(lineNumber) follows the checkpoint line, which must be last") }
        let value: JSONValue
        do {
            value = try CanonicalJSON.parse(Array(line))
        } catch {
            throw Failure(seq: lastSeq.map { $0 + 1 }, reason: "line \(lineNumber) is not JSON: the file is corrupt or cut")
        }
        guard let tenant else {
            guard value["export"]?.stringValue == ExportFormat.name, let id = value["tenant"]?.stringValue.flatMap(UUID.init(uuidString:)) else {
                throw Failure(seq: nil, reason: "the first line is not a petstore export header")
            }
            guard value["version"] == .number(Double(ExportFormat.version)) else {
                throw Failure(seq: nil, reason: "export version \(value["version"].map { String(describing: $0) } ?? "?") is not one this build reads")
            }
            self.tenant = TenantID(id)
            return
        }
        if value["checkpoint"] != nil {
            trailer = value
            return
        }
        let event = try Self.event(value, tenant: tenant, line: lineNumber)
        if chain == nil {
            chain = event.seq == 1 ? ChainVerifier() : ChainVerifier(after: event.seq - 1, previous: event.prevHash)
            firstSeq = event.seq
        }
        if let failure = chain?.check(event) {
            throw Failure(seq: failure.firstBadSeq, reason: failure.reason ?? "the chain breaks")
        }
        hashes[event.seq] = event.hash
        lastSeq = event.seq
        count += 1
    }

    public func finish() throws(Failure) -> Report {
        guard let tenant else { throw Failure(seq: nil, reason: "the file is empty") }
        guard let trailer, let checkpoint = trailer["checkpoint"], let keyText = trailer["public_key"]?.stringValue,
              let keyData = Data(base64Encoded: keyText), let key = try? Curve25519.Signing.PublicKey(rawRepresentation: keyData) else {
            throw Failure(seq: lastSeq.map { $0 + 1 }, reason: "the checkpoint line is missing: the file was cut")
        }
        if let pinnedKey, pinnedKey.rawRepresentation != key.rawRepresentation {
            throw Failure(seq: nil, reason: "the checkpoint is signed with a key other than the one trusted")
        }
        guard let seq = checkpoint["seq"]?.numberValue.map({ Int64($0) }), let head = checkpoint["head_hash"]?.stringValue.flatMap { [UInt8](hexString: $0) },
              let signedAt = checkpoint["signed_at"]?.stringValue, let keyID = checkpoint["key_id"]?.stringValue,
              let signature = checkpoint["signature"]?.stringValue.flatMap { [UInt8](hexString: $0) },
              let owner = checkpoint["tenant"]?.stringValue.flatMap(UUID.init(uuidString:)) else {
            throw Failure(seq: nil, reason: "the checkpoint line is malformed")
        }
        let signed = Checkpoint(tenant: TenantID(owner), seq: seq, headHash: head, signedAt: signedAt, keyID: keyID, signature: signature)
        guard signed.isSigned(by: key) else { throw Failure(seq: nil, reason: "the checkpoint's signature is not valid") }
        guard signed.tenant == tenant else { throw Failure(seq: nil, reason: "the checkpoint is another tenant's than the header says") }
        if let lastSeq, seq > lastSeq {
            throw Failure(seq: lastSeq + 1, reason: "the events end at seq \(lastSeq) but the checkpoint covers \(seq): the export was cut")
        }
        if let firstSeq, seq >= firstSeq {
            switch signed.check(hashAtSeq: hashes[seq]) {
            case .consistent: break
            case .truncated: throw Failure(seq: seq, reason: "the checkpointed event is missing")
            case .rewritten: throw Failure(seq: seq, reason: "the event at the checkpoint is not the one signed: the log was rewritten")
            }
        }
        return Report(tenant: tenant, firstSeq: firstSeq, lastSeq: lastSeq, events: count, checkpointSeq: seq, keyID: keyID)
    }

    /// The event a line of an export holds.
    public static func event(line: some Collection<UInt8>, tenant: TenantID) throws(Failure) -> RecordedEvent? {
        guard let value = try? CanonicalJSON.parse(Array(line)) else { throw Failure(seq: nil, reason: "a line is not JSON") }
        guard value["seq"] != nil else { return nil }
        return try event(value, tenant: tenant, line: 0)
    }

    static func event(_ value: JSONValue, tenant: TenantID, line: Int) throws(Failure) -> RecordedEvent {
        guard let seq = value["seq"]?.numberValue.map({ Int64($0) }), let streamText = value["stream"]?.stringValue,
              let streamVersion = value["stream_version"]?.numberValue, let type = value["type"]?.stringValue,
              let schemaVersion = value["schema_version"]?.numberValue, let data = value["data"], let metadata = value["metadata"],
              let recordedAt = value["recorded_at"]?.stringValue, let prev = value["prev_hash"]?.stringValue.flatMap { [UInt8](hexString: $0) },
              let hash = value["hash"]?.stringValue.flatMap { [UInt8](hexString: $0) }, streamText.count > 37,
              let streamID = UUID(uuidString: String(streamText.suffix(36))),
              let stream = try? StreamName(type: String(streamText.dropLast(37)), id: streamID) else {
            throw Failure(seq: value["seq"]?.numberValue.map { Int64($0) }, reason: "line \(line) is not an event")
        }
        return RecordedEvent(tenant: tenant, seq: seq, stream: stream, streamVersion: Int(streamVersion), type: type,
                             schemaVersion: Int(schemaVersion), data: data, metadataJSON: metadata, recordedAtText: recordedAt,
                             prevHash: prev, hash: hash)
    }
}
