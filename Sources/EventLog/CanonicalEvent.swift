import Crypto
import Database

/// The bytes an event's chain hash covers, and the hash itself.
///
///     hash = SHA-256(prev_hash ‖ canonical bytes)        prev_hash of seq 1 = 32 zero bytes
///
/// The canonical bytes are the RFC 8785 (JCS) serialization of the JSON object
///
///     {"data": …, "metadata": …, "recorded_at": "2026-01-02T03:04:05.123456Z",
///      "schema_version": 1, "seq": 7, "stream_id": "<uuid, lowercase>", "stream_type": "pet",
///      "stream_version": 3, "tenant_id": "<uuid, lowercase>", "type": "PetRegistered"}
///
/// so every field of the row except the hashes themselves is covered, including the tenant
/// (an event cannot be moved to another tenant's log) and the time (microseconds, UTC).
public enum CanonicalEvent {
    public static let genesisHash = [UInt8](repeating: 0, count: 32)

    public static func bytes(
        tenant: TenantID, seq: Int64, stream: StreamName, streamVersion: Int, type: String,
        schemaVersion: Int, data: JSONValue, metadata: JSONValue, recordedAt: String
    ) -> [UInt8] {
        CanonicalJSON.serialize(.object([
            .init("data", data),
            .init("metadata", metadata),
            .init("recorded_at", .string(recordedAt)),
            .init("schema_version", .number(Double(schemaVersion))),
            .init("seq", .number(Double(seq))),
            .init("stream_id", .string(stream.id.uuidString.lowercased())),
            .init("stream_type", .string(stream.type)),
            .init("stream_version", .number(Double(streamVersion))),
            .init("tenant_id", .string(tenant.description)),
            .init("type", .string(type)),
        ]))
    }

    /// The same bytes from parts already in canonical form: the append path serializes data and
    /// metadata once, before it takes the tenant's lock, and only splices in seq and time under it.
    static func bytes(
        tenant: String, seq: Int64, streamType: String, streamID: String, streamVersion: Int, type: [UInt8],
        schemaVersion: Int, canonicalData: [UInt8], canonicalMetadata: [UInt8], recordedAt: String
    ) -> [UInt8] {
        var output: [UInt8] = []
        output.reserveCapacity(canonicalData.count + canonicalMetadata.count + 256)
        output.append(contentsOf: #"{"data":"#.utf8)
        output.append(contentsOf: canonicalData)
        output.append(contentsOf: #","metadata":"#.utf8)
        output.append(contentsOf: canonicalMetadata)
        output.append(contentsOf: #","recorded_at":""#.utf8)
        output.append(contentsOf: recordedAt.utf8)
        output.append(contentsOf: #"","schema_version":"#.utf8)
        output.append(contentsOf: String(schemaVersion).utf8)
        output.append(contentsOf: #","seq":"#.utf8)
        output.append(contentsOf: String(seq).utf8)
        output.append(contentsOf: #","stream_id":""#.utf8)
        output.append(contentsOf: streamID.utf8)
        output.append(contentsOf: #"","stream_type":""#.utf8)
        output.append(contentsOf: streamType.utf8)
        output.append(contentsOf: #"","stream_version":"#.utf8)
        output.append(contentsOf: String(streamVersion).utf8)
        output.append(contentsOf: #","tenant_id":""#.utf8)
        output.append(contentsOf: tenant.utf8)
        output.append(contentsOf: #"","type":"#.utf8)
        output.append(contentsOf: type)
        output.append(UInt8(ascii: "}"))
        return output
    }

    public static func hash(previous: [UInt8], canonical: [UInt8]) -> [UInt8] {
        var hasher = SHA256()
        hasher.update(data: previous)
        hasher.update(data: canonical)
        return Array(hasher.finalize())
    }
}

extension Array where Element == UInt8 {
    /// Lowercase hex, as hashes are shown in the API and in exports.
    public var hexString: String {
        let digits = Array("0123456789abcdef".utf8)
        var output = [UInt8]()
        output.reserveCapacity(count * 2)
        for byte in self {
            output.append(digits[Int(byte >> 4)])
            output.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: output, as: UTF8.self)
    }

    public init?(hexString: String) {
        let bytes = Array<UInt8>(hexString.utf8)
        guard bytes.count % 2 == 0 else { return nil }
        var result = [UInt8]()
        result.reserveCapacity(bytes.count / 2)
        var index = 0
        while index < bytes.count {
            guard let high = Self.nibble(bytes[index]), let low = Self.nibble(bytes[index + 1]) else { return nil }
            result.append(high << 4 | low)
            index += 2
        }
        self = result
    }

    private static func nibble(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
