import EventLog
import Foundation
import Hummingbird

/// A request's query, checked before any value is used: only the names the route knows, each at
/// most once (every parameter here has one value: `limit=1&limit=2` has no meaning to guess), and
/// no control characters in a value (U+0000 cannot reach PostgreSQL text, and none belongs in a
/// filter, a time or a cursor).
struct QueryParameters {
    private let values: [String: String]

    /// How many unknown names a 400 lists: enough to spot a typo, while ten thousand of them
    /// still make a short answer.
    static let listedNames = 10
    /// How much of each listed name is quoted.
    static let listedNameLength = 64

    init(_ request: Request, allowed: Set<String>) throws {
        var values: [String: String] = [:]
        var unknown = Set<String>()
        var repeated = Set<String>()
        for (key, value) in request.uri.queryParameters {
            let name = String(key)
            guard allowed.contains(name) else {
                unknown.insert(name)
                continue
            }
            if values[name] == nil { values[name] = String(value) } else { repeated.insert(name) }
        }
        if !unknown.isEmpty {
            let (listed, text) = Self.listing(unknown.sorted())
            throw Problem.badRequest("Unknown query parameter(s): \(text). Known here: \(allowed.sorted().joined(separator: ", ")).",
                                     errors: listed.map { .init(field: $0, message: "is not a known parameter") })
        }
        if !repeated.isEmpty {
            let names = repeated.sorted()
            throw Problem.badRequest("\(names.joined(separator: ", ")) must be given once.",
                                     errors: names.map { .init(field: $0, message: "must be given once") })
        }
        let controlled = values.keys.sorted().filter { values[$0]?.unicodeScalars.contains(where: Self.isControl) == true }
        if !controlled.isEmpty {
            throw Problem.badRequest("\(controlled.joined(separator: ", ")) must not contain control characters.",
                                     errors: controlled.map { .init(field: $0, message: "must not contain control characters") })
        }
        self.values = values
    }

    subscript(name: String) -> String? { values[name] }

    /// An RFC 3339 time within `Timestamps.acceptedRange`, or nil when absent.
    func time(_ name: String) throws -> Date? {
        guard let raw = values[name] else { return nil }
        guard let date = Timestamps.parse(raw) else {
            throw Problem.badRequest("\(name) must be an RFC 3339 time such as 2026-01-31T12:00:00Z.",
                                     errors: [.init(field: name, message: "is not an RFC 3339 time")])
        }
        guard Timestamps.acceptedRange.contains(date) else {
            throw Problem.badRequest("\(name) must lie from \(Timestamps.acceptedRangeText).",
                                     errors: [.init(field: name, message: "is outside \(Timestamps.acceptedRangeText)")])
        }
        return date
    }

    /// The first `listedNames` of `names`, each cut to `listedNameLength`, and them in words with
    /// a count of the rest (`a, b and 9990 more`).
    static func listing(_ names: [String]) -> (listed: [String], text: String) {
        let listed = names.prefix(listedNames).map { $0.count > listedNameLength ? String($0.prefix(listedNameLength)) + "…" : $0 }
        let more = names.count > listed.count ? " and \(names.count - listed.count) more" : ""
        return (listed, listed.joined(separator: ", ") + more)
    }

    static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        scalar.value <= 0x1F || (0x7F...0x9F).contains(scalar.value)
    }
}
