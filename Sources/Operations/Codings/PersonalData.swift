import Crypto
import Database
import Domain
import EventLog
import Foundation
import NIOCore

/// Personal fields in events, sealed with a key per data subject (crypto-shredding).
///
/// The log is append-only and hash-chained, so a person's data cannot be cut out of it. Each
/// personal field is stored as `{"sealed": base64(nonce ‖ ciphertext ‖ tag)}` (ChaCha20-Poly1305,
/// bound to the tenant, the subject and the field), under a key of the subject's kept in
/// `subject_keys`. Erasure destroys the key in the transaction that records it: the sealed bytes
/// stay, the chain still verifies, and every later read shows the field as `TenantUser.erased`.
/// Events recorded before sealing existed hold their fields in the clear and read as they are.
public enum PersonalData {
    /// The personal fields of an event type, and the field naming whose they are.
    struct Rule: Sendable {
        let subject: String
        let fields: [String]
    }

    static let rules: [String: Rule] = [
        UserAdded.eventType: Rule(subject: "user_id", fields: ["email"]),
    ]

    /// `events` with their personal fields sealed, each subject's key made on first use; and
    /// for each erasure among them, the subject's key destroyed. In the session's transaction.
    public static func seal(_ events: [NewEvent], in session: TenantSession) async throws -> [NewEvent] {
        var sealed: [NewEvent] = []
        for event in events {
            if event.type == UserErased.eventType, let subject = event.data["user_id"]?.stringValue.flatMap(UUID.init(uuidString:)) {
                try await shred(subject, in: session)
            }
            guard let rule = rules[event.type], let subject = event.data[rule.subject]?.stringValue.flatMap(UUID.init(uuidString:)) else {
                sealed.append(event)
                continue
            }
            let key = try await key(for: subject, in: session)
            let data = try transform(event.data, fields: rule.fields) { field, value throws in
                guard case .string(let text) = value else { return value }
                let box = try ChaChaPoly.seal(Data(text.utf8), using: key, authenticating: context(session.tenant, subject, field))
                return .object([JSONValue.Member("sealed", .string(box.combined.base64EncodedString()))])
            }
            sealed.append(NewEvent(type: event.type, schemaVersion: event.schemaVersion, data: data))
        }
        return sealed
    }

    /// `events` with their personal fields opened with the keys in the session's database, or
    /// read as erased where a key is gone.
    public static func reveal(_ events: [RecordedEvent], in session: TenantSession) async throws -> [RecordedEvent] {
        let subjects = Set(events.compactMap { event -> UUID? in
            guard let rule = rules[event.type], isSealed(event, rule) else { return nil }
            return event.data[rule.subject]?.stringValue.flatMap(UUID.init(uuidString:))
        })
        guard !subjects.isEmpty else { return events }
        var keys: [UUID: SymmetricKey] = [:]
        let rows = try await session.query("""
            SELECT subject_id, key FROM subject_keys WHERE tenant_id = \(session.tenant) AND subject_id = ANY(\(Array(subjects))) AND key IS NOT NULL
            """)
        for try await (subject, key) in rows.decode((UUID, ByteBuffer).self) { keys[subject] = SymmetricKey(data: Array(buffer: key)) }
        return try open(events, keys: keys)
    }

    /// `events` with their personal fields opened with `keys`; a field whose key is missing reads
    /// as erased (a log replayed into a database that does not hold its keys).
    public static func open(_ events: [RecordedEvent], keys: [UUID: SymmetricKey] = [:]) throws -> [RecordedEvent] {
        try events.map { event in
            guard let rule = rules[event.type], isSealed(event, rule),
                  let subject = event.data[rule.subject]?.stringValue.flatMap(UUID.init(uuidString:)) else { return event }
            let data = try transform(event.data, fields: rule.fields) { field, value throws in
                guard case .object = value, let sealed = value["sealed"]?.stringValue else { return value }
                guard let key = keys[subject] else { return .string(TenantUser.erased) }
                guard let combined = Data(base64Encoded: sealed) else {
                    throw EventLogError(.decodingFailed, "event \(event.seq) holds a sealed \(field) that is not base64")
                }
                let plain = try ChaChaPoly.open(ChaChaPoly.SealedBox(combined: combined), using: key,
                                                authenticating: context(event.tenant, subject, field))
                return .string(String(decoding: plain, as: UTF8.self))
            }
            return event.decodingView(data: data)
        }
    }

    static func isSealed(_ event: RecordedEvent, _ rule: Rule) -> Bool {
        rule.fields.contains { event.data[$0]?.isObject == true }
    }

    /// What a sealed field is bound to: moved to another tenant, subject or field, it fails to open.
    static func context(_ tenant: TenantID, _ subject: UUID, _ field: String) -> Data {
        Data("petstore/personal/v1/\(tenant.description)/\(subject.uuidString.lowercased())/\(field)".utf8)
    }

    static func transform(_ data: JSONValue, fields: [String], _ change: (String, JSONValue) throws -> JSONValue) rethrows -> JSONValue {
        guard case .object(let members) = data else { return data }
        return .object(try members.map { member in
            fields.contains(member.key) ? JSONValue.Member(member.key, try change(member.key, member.value)) : member
        })
    }

    /// The subject's key, made now if they have none. A subject whose key was destroyed gets no
    /// new one: nothing more is recorded about a person after their erasure.
    static func key(for subject: UUID, in session: TenantSession) async throws -> SymmetricKey {
        let fresh = SymmetricKey(size: .bits256).withUnsafeBytes { ByteBuffer(bytes: $0) }
        let rows = try await session.query("""
            WITH made AS (
              INSERT INTO subject_keys (tenant_id, subject_id, key) VALUES (\(session.tenant), \(subject), \(fresh))
              ON CONFLICT (tenant_id, subject_id) DO NOTHING
              RETURNING key
            )
            SELECT key FROM made
            UNION ALL
            SELECT key FROM subject_keys WHERE tenant_id = \(session.tenant) AND subject_id = \(subject) AND NOT EXISTS (SELECT 1 FROM made)
            """)
        for try await key in rows.decode(ByteBuffer?.self) {
            guard let key else { break }
            return SymmetricKey(data: Array(buffer: key))
        }
        throw EventLogError(.invalidEvent, "personal data of an erased subject cannot be recorded")
    }

    /// Destroys the subject's key (or records that they have none), so nothing sealed with it opens again.
    static func shred(_ subject: UUID, in session: TenantSession) async throws {
        try await session.run("""
            INSERT INTO subject_keys (tenant_id, subject_id, key, erased_at) VALUES (\(session.tenant), \(subject), NULL, now())
            ON CONFLICT (tenant_id, subject_id) DO UPDATE SET key = NULL, erased_at = coalesce(subject_keys.erased_at, now())
            """)
    }
}
