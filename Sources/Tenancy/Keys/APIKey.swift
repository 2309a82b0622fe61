import Crypto
import Foundation

/// An API key: `psk_<prefix>_<secret>` for tenant users, `ppk_<prefix>_<secret>` for platform admins.
///
/// The prefix (8 characters) is public: it is stored in clear, shown in listings, and finds the
/// row. The secret is 256 random bits in base64url. Only SHA-256 of the whole key is stored.
public struct APIKey: Sendable, Equatable, CustomStringConvertible {
    public enum Kind: String, Sendable { case tenant = "psk", platform = "ppk" }

    public let kind: Kind
    /// `psk_ab12cd34`: the part stored in clear.
    public let prefix: String
    /// The whole key, shown once.
    public let value: String

    static let prefixAlphabet = Array("abcdefghijklmnopqrstuvwxyz234567")
    static let prefixLength = 8
    static let secretLength = 43

    public static func generate(_ kind: Kind) -> APIKey {
        var generator = SystemRandomNumberGenerator()
        let prefixBody = String((0..<prefixLength).map { _ in prefixAlphabet.randomElement(using: &generator)! })
        let secretBytes = (0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) }
        let secret = Data(secretBytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
        let prefix = "\(kind.rawValue)_\(prefixBody)"
        return APIKey(kind: kind, prefix: prefix, value: "\(prefix)_\(secret)")
    }

    /// Parses a presented key; nil for anything not of the exact form (wrong length, alphabet, kind).
    public init?(presented value: String) {
        let parts = value.split(separator: "_", maxSplits: 2, omittingEmptySubsequences: false)
        guard value.utf8.count == 3 + 1 + Self.prefixLength + 1 + Self.secretLength, parts.count == 3,
              let kind = Kind(rawValue: String(parts[0])),
              parts[1].count == Self.prefixLength, parts[1].allSatisfy({ Self.prefixAlphabet.contains($0) }),
              parts[2].utf8.count == Self.secretLength,
              parts[2].utf8.allSatisfy({ byte in
                  (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
                      || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "_")
              })
        else { return nil }
        self.init(kind: kind, prefix: "\(parts[0])_\(parts[1])", value: value)
    }

    private init(kind: Kind, prefix: String, value: String) {
        self.kind = kind
        self.prefix = prefix
        self.value = value
    }

    /// SHA-256 of the whole key: what is stored and compared.
    public var hash: [UInt8] { Array(SHA256.hash(data: Data(value.utf8))) }

    /// Compares hashes without an early exit, so timing says nothing about how much matched.
    public static func constantTimeEquals(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for index in a.indices { difference |= a[index] ^ b[index] }
        return difference == 0
    }

    /// Never prints the secret.
    public var description: String { "\(prefix)_****" }
}
