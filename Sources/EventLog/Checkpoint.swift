import Crypto
import Database
import Foundation

/// The platform's signed statement that a tenant's log had `seq` events ending in `headHash` at
/// `signedAt`: Ed25519 over the canonical JSON of those four fields.
public struct Checkpoint: Sendable, Equatable {
    public let tenant: TenantID
    public let seq: Int64
    public let headHash: [UInt8]
    /// RFC 3339 with microseconds, as event times are written.
    public let signedAt: String
    public let keyID: String
    public let signature: [UInt8]

    public init(tenant: TenantID, seq: Int64, headHash: [UInt8], signedAt: String, keyID: String, signature: [UInt8]) {
        self.tenant = tenant
        self.seq = seq
        self.headHash = headHash
        self.signedAt = signedAt
        self.keyID = keyID
        self.signature = signature
    }

    /// The bytes signed.
    public static func payload(tenant: TenantID, seq: Int64, headHash: [UInt8], signedAt: String) -> [UInt8] {
        CanonicalJSON.serialize(.object([
            JSONValue.Member("head_hash", .string(headHash.hexString)),
            JSONValue.Member("seq", .number(Double(seq))),
            JSONValue.Member("signed_at", .string(signedAt)),
            JSONValue.Member("tenant", .string(tenant.description)),
        ]))
    }

    public var payload: [UInt8] { Self.payload(tenant: tenant, seq: seq, headHash: headHash, signedAt: signedAt) }

    /// Whether `key` signed this checkpoint as it stands.
    public func isSigned(by key: Curve25519.Signing.PublicKey) -> Bool {
        keyID == CheckpointSigner.keyID(of: key) && key.isValidSignature(signature, for: payload)
    }

    /// What the checkpoint says of a log whose event `seq` has `hash` (nil: there is no such
    /// event, the log is shorter).
    public func check(hashAtSeq hash: [UInt8]?) -> CheckpointCheck {
        guard let hash else { return .truncated }
        return hash == headHash ? .consistent : .rewritten
    }
}

public enum CheckpointCheck: String, Sendable {
    /// The log still holds the checkpointed event, unchanged.
    case consistent
    /// The log ends before the checkpointed seq: its tail was cut.
    case truncated
    /// The event at the checkpointed seq is not the one signed: the chain was rewritten.
    case rewritten
}

/// Signs checkpoints with the platform's Ed25519 key.
public struct CheckpointSigner: Sendable {
    /// The private key's raw bytes (the key type is not Sendable); checked when made.
    let raw: Data

    public init(key: Curve25519.Signing.PrivateKey) {
        self.raw = key.rawRepresentation
    }

    /// A key of its own, kept nowhere: for tests and tools that sign nothing lasting.
    public static func ephemeral() -> CheckpointSigner {
        CheckpointSigner(key: Curve25519.Signing.PrivateKey())
    }

    // The bytes came from a valid key.
    var key: Curve25519.Signing.PrivateKey { try! Curve25519.Signing.PrivateKey(rawRepresentation: raw) }

    public var publicKey: Curve25519.Signing.PublicKey { key.publicKey }
    public var keyID: String { Self.keyID(of: key.publicKey) }

    /// The first 16 hex digits of the SHA-256 of the raw public key.
    public static func keyID(of key: Curve25519.Signing.PublicKey) -> String {
        String(Array(SHA256.hash(data: key.rawRepresentation)).hexString.prefix(16))
    }

    public func sign(tenant: TenantID, seq: Int64, headHash: [UInt8], at date: Date = Date()) throws -> Checkpoint {
        let signedAt = Timestamps.format(date)
        let signature = try key.signature(for: Checkpoint.payload(tenant: tenant, seq: seq, headHash: headHash, signedAt: signedAt))
        return Checkpoint(tenant: tenant, seq: seq, headHash: headHash, signedAt: signedAt, keyID: keyID, signature: Array(signature))
    }

    /// Signs other statements of the platform's (a purge receipt) with the same key.
    public func signature(for payload: [UInt8]) throws -> [UInt8] {
        Array(try key.signature(for: payload))
    }

    /// The key kept in `file` (32 raw bytes, base64), made there on first use with mode 0600.
    public static func load(file: URL) throws -> CheckpointSigner {
        if let text = try? String(contentsOf: file, encoding: .utf8) {
            guard let raw = Data(base64Encoded: text.trimmingCharacters(in: .whitespacesAndNewlines)),
                  let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: raw) else {
                throw CheckpointKeyError("the signing key in \(file.path) is not a base64 Ed25519 private key")
            }
            return CheckpointSigner(key: key)
        }
        let key = Curve25519.Signing.PrivateKey()
        try FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
        guard FileManager.default.createFile(atPath: file.path, contents: Data(key.rawRepresentation.base64EncodedString().utf8),
                                             attributes: [.posixPermissions: 0o600]) else {
            throw CheckpointKeyError("the signing key cannot be written to \(file.path)")
        }
        return CheckpointSigner(key: key)
    }
}

public struct CheckpointKeyError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
