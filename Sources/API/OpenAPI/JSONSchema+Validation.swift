import Domain
import EventLog

/// The rules of `Domain.Validation` as JSON Schema, for the request bodies that go through it.
///
/// A schema may not refuse what the server accepts (a client that trusts it would never send
/// it, and a fuzzer sending it as invalid would find it accepted), so each pattern mirrors the
/// check exactly: the whitespace `Validation` trims around a value, then what it requires of the
/// rest. Lengths the server counts in Characters (grapheme clusters, what a person counts) have
/// no JSON Schema equivalent, which counts code points: they are in the descriptions only.
extension JSONSchema {
    /// `Tenant.validateSlug`, reserved words aside.
    static let slugPattern = "^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$"

    /// What `Validation` trims (Foundation's `whitespacesAndNewlines`: Unicode White_Space and
    /// U+200B), as the inside of a character class.
    static let trimmedClass = #"\t-\r \u0085\u00A0\u1680\u2000-\u200B\u2028\u2029\u202F\u205F\u3000"#
    /// What `Validation.isControl` refuses: C0 controls and DEL.
    static let controlClass = #"\x00-\x1F\x7F"#

    /// Leading or trailing whitespace, trimmed away.
    private static let padding = "[\(trimmedClass)]*"
    /// The first character after trimming: neither whitespace nor a control character.
    private static let visible = #"[^\x00-\x20\x7F\u0085\u00A0\u1680\u2000-\u200B\u2028\u2029\u202F\u205F\u3000]"#
    /// Any character but a control character.
    private static let uncontrolled = "[^\(controlClass)]"

    /// Text that `Validation.text` accepts: not blank, no control characters once trimmed.
    static func requiredText(maxCharacters: Int, description: String) -> JSONValue {
        string(pattern: "^\(padding)\(visible)\(uncontrolled)*\(padding)$", minLength: 1,
               description: "\(description) Trimmed; then 1 to \(maxCharacters) characters, no control characters.")
    }

    /// Text that `Validation.optionalText` accepts: blank means none, else no control characters.
    static func optionalText(maxCharacters: Int, nullable: Bool = false, description: String) -> JSONValue {
        string(pattern: "^\(padding)(?:\(visible)\(uncontrolled)*)?\(padding)$", nullable: nullable,
               description: "\(description) Trimmed; blank means none; at most \(maxCharacters) characters, no control characters.")
    }

    /// `Validation.microchipID`: 9 to 15 ASCII digits once trimmed; blank means none.
    static func microchipID(nullable: Bool = false, description: String) -> JSONValue {
        let digits = Validation.microchipDigits
        return string(pattern: "^\(padding)(?:[0-9]{\(digits.lowerBound),\(digits.upperBound)}\(padding))?$", nullable: nullable,
                      description: "\(description) \(digits.lowerBound) to \(digits.upperBound) digits; blank means none.")
    }

    /// `Validation.email`: once trimmed, one `@` between a local part and a domain, neither with
    /// whitespace (Unicode White_Space) nor control characters; at most 254 characters.
    static func email(nullable: Bool = false, description: String) -> JSONValue {
        let part = #"[^@\x00-\x20\x7F\u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]+"#
        return string(pattern: "^\(padding)\(part)@\(part)\(padding)$", nullable: nullable,
                      description: "\(description) An email address, lowercased; at most \(Validation.emailMaxLength) characters.")
    }
}
