import Foundation

/// Collects every problem with a command's input, so that the caller hears about all of them at
/// once instead of fixing one field per round trip.
///
/// Each check returns the normalized value (trimmed, lowercased, empty-as-nil as the field
/// demands) and records at most one `FieldError` for its field.
public struct Validation: Sendable {
    public static let petNameLength = 1...100
    public static let speciesLength = 1...50
    public static let breedMaxLength = 100
    public static let microchipDigits = 9...15
    public static let configKeyLength = 1...64
    public static let configValueMaxSize = 4096
    public static let tenantNameLength = 1...100
    public static let emailMaxLength = 254
    public static let suspensionReasonMaxLength = 500
    public static let apiKeyPrefixLength = 1...32

    /// Configuration keys whose values have a fixed JSON type.
    public static let typedConfigKeys: [String: ConfigValueKind] = ["include_deleted_pets": .bool]

    public private(set) var errors: [FieldError] = []

    public init() {}

    /// Records a problem found outside the checks below.
    public mutating func fail(_ field: String, _ message: String) {
        errors.append(FieldError(field: field, message: message))
    }

    /// Throws `.validation` with every recorded problem, if there is any.
    public func check() throws(DomainError) {
        if !errors.isEmpty { throw DomainError.validation(errors) }
    }

    // MARK: Text

    /// Trimmed text whose length in Characters (what a person counts) lies in `length`.
    public mutating func text(_ raw: String, field: String, length: ClosedRange<Int>) -> String {
        let value = raw.trimmingCharacters(in: .whitespacesAndNewlines)
        if value.isEmpty, length.lowerBound > 0 {
            fail(field, "is required")
        } else if !length.contains(value.count) {
            fail(field, "must be between \(length.lowerBound) and \(length.upperBound) characters")
        } else if Self.containsControlCharacter(value) {
            fail(field, "must not contain control characters")
        }
        return value
    }

    /// Like `text`, but an absent or blank value means "none".
    public mutating func optionalText(_ raw: String?, field: String, maxLength: Int) -> String? {
        guard let raw else { return nil }
        let value = text(raw, field: field, length: 0...maxLength)
        return value.isEmpty ? nil : value
    }

    public mutating func petName(_ raw: String) -> String {
        text(raw, field: "name", length: Self.petNameLength)
    }

    public mutating func species(_ raw: String) -> String {
        text(raw, field: "species", length: Self.speciesLength)
    }

    /// An empty breed means the pet has none.
    public mutating func breed(_ raw: String?) -> String? {
        optionalText(raw, field: "breed", maxLength: Self.breedMaxLength)
    }

    /// 9 to 15 ASCII digits (ISO 11784 chips are 15, older ones fewer); empty means none.
    public mutating func microchipID(_ raw: String?) -> String? {
        guard let raw else { return nil }
        let value = raw.trimmingCharacters(in: .whitespacesAndNewlines)
        if value.isEmpty { return nil }
        let digits = value.utf8
        if !digits.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) })
            || !Self.microchipDigits.contains(digits.count) {
            fail("microchip_id", "must be \(Self.microchipDigits.lowerBound) to \(Self.microchipDigits.upperBound) digits")
        }
        return value
    }

    // MARK: Tenants

    /// Slugs are checked exactly as given: they name hosts and paths, so "Acme" is not "acme".
    public mutating func slug(_ raw: String) -> String {
        errors += Tenant.validateSlug(raw)
        return raw
    }

    public mutating func tenantName(_ raw: String) -> String {
        text(raw, field: "name", length: Self.tenantNameLength)
    }

    /// One `@` between a non-empty local part and domain, no whitespace; lowercased so that
    /// uniqueness does not depend on how someone typed it.
    public mutating func email(_ raw: String) -> String {
        let value = raw.trimmingCharacters(in: .whitespacesAndNewlines).lowercased()
        let parts = value.split(separator: "@", omittingEmptySubsequences: false)
        if value.isEmpty {
            fail("email", "is required")
        } else if value.count > Self.emailMaxLength {
            fail("email", "must be at most \(Self.emailMaxLength) characters")
        } else if parts.count != 2 || parts[0].isEmpty || parts[1].isEmpty
            || value.unicodeScalars.contains(where: { $0.properties.isWhitespace || Self.isControl($0) }) {
            fail("email", "must be an email address")
        }
        return value
    }

    /// The visible start of an API key, kept so people can tell their keys apart.
    public mutating func apiKeyPrefix(_ raw: String) -> String {
        let graphicASCII = UInt8(0x21)...UInt8(0x7E)
        if !Self.apiKeyPrefixLength.contains(raw.utf8.count) || !raw.utf8.allSatisfy(graphicASCII.contains) {
            fail("prefix", "must be 1 to \(Self.apiKeyPrefixLength.upperBound) printable ASCII characters")
        }
        return raw
    }

    // MARK: Configuration

    /// Lowercase letters, digits, `_` and `.`, 1 to 64 of them.
    public mutating func configKey(_ key: String) {
        let allowed = key.utf8.allSatisfy { byte in
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
                || byte == UInt8(ascii: "_") || byte == UInt8(ascii: ".")
        }
        if !allowed || !Self.configKeyLength.contains(key.utf8.count) {
            fail("key", "must be 1 to 64 of a-z, 0-9, '_' and '.'")
        }
    }

    /// Known keys must hold their type; any other key may hold any JSON up to 4 KiB.
    public mutating func configValue(_ value: ConfigValue, forKey key: String) {
        if let kind = Self.typedConfigKeys[key], ConfigValueKind(value) != kind {
            fail("value", "must be a \(kind.rawValue) for \(key)")
        } else if !value.isRepresentableAsJSON {
            fail("value", "must contain only finite numbers")
        } else if value.containsNUL {
            fail("value", "must not contain U+0000 (\\u0000) in a string or a key")
        } else if value.encodedSize > Self.configValueMaxSize {
            fail("value", "must be at most \(Self.configValueMaxSize) bytes of JSON")
        }
    }

    // MARK: Helpers

    static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        scalar.value <= 0x1F || scalar.value == 0x7F
    }

    /// Whether `text` holds a C0 control character or DEL, which no stored text does.
    public static func containsControlCharacter(_ text: some StringProtocol) -> Bool {
        text.unicodeScalars.contains(where: isControl)
    }
}
