/// Finds the tenant slug a request names, by subdomain, path prefix or header.
///
/// Each strategy can be switched off. When several name a tenant they must agree; a request that
/// names none is left to the caller (platform routes need none, tenant routes answer 400).
public struct TenantResolver: Sendable {
    public struct Strategies: OptionSet, Sendable {
        public let rawValue: Int
        public init(rawValue: Int) { self.rawValue = rawValue }
        public static let subdomain = Strategies(rawValue: 1)
        public static let path = Strategies(rawValue: 2)
        public static let header = Strategies(rawValue: 4)
        public static let all: Strategies = [.subdomain, .path, .header]
    }

    public enum Failure: Error, Sendable, Equatable {
        case malformedSlug(String)
        case malformedHost
        case conflicting
    }

    /// What the request names, and its path with a `/{slug}` prefix removed.
    public struct Resolution: Sendable, Equatable {
        public let slug: String?
        public let path: String
    }

    public static let headerName = "X-Tenant-ID"

    public let strategies: Strategies
    public let baseDomain: String

    public init(strategies: Strategies = .all, baseDomain: String = "petstore.localhost") {
        self.strategies = strategies
        self.baseDomain = baseDomain.lowercased()
    }

    public func resolve(host: String?, path: String, header: String?) throws(Failure) -> Resolution {
        var candidates: [String] = []
        var remainingPath = path

        if strategies.contains(.subdomain), let host, let slug = try subdomain(of: host) {
            candidates.append(slug)
        }
        if strategies.contains(.path), let (slug, rest) = try pathPrefix(path) {
            candidates.append(slug)
            remainingPath = rest
        }
        if strategies.contains(.header), let header {
            guard Self.isWellFormedSlug(header) else { throw .malformedSlug(String(header.prefix(64))) }
            candidates.append(header)
        }
        guard Set(candidates).count <= 1 else { throw .conflicting }
        return Resolution(slug: candidates.first, path: remainingPath)
    }

    /// `acme.petstore.localhost[:port][.]` → `acme`; hosts outside the base domain, the base
    /// domain itself and IP addresses name no tenant.
    func subdomain(of rawHost: String) throws(Failure) -> String? {
        guard rawHost.utf8.count <= 255 else { throw .malformedHost }
        var host = Substring(rawHost.lowercased())
        if host.hasPrefix("[") {
            // An IPv6 literal, possibly with a port: never a tenant.
            guard host.contains("]") else { throw .malformedHost }
            return nil
        }
        if let colon = host.lastIndex(of: ":") {
            let port = host[host.index(after: colon)...]
            guard !port.isEmpty, port.utf8.allSatisfy(Self.isDigit), port.utf8.count <= 5 else { throw .malformedHost }
            host = host[..<colon]
        }
        if host.hasSuffix(".") { host = host.dropLast() }
        // Bytes, not Characters: every request passes here, and a host is ASCII or malformed.
        guard !host.isEmpty, host.utf8.allSatisfy({ Self.isLowercaseLetter($0) || Self.isDigit($0) || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: ".") }) else {
            throw .malformedHost
        }
        if host.utf8.split(separator: UInt8(ascii: ".")).allSatisfy({ $0.allSatisfy(Self.isDigit) }) { return nil }
        let suffix = "." + baseDomain
        guard host.hasSuffix(suffix) else { return nil }
        let label = host.dropLast(suffix.count)
        guard Self.isWellFormedSlug(String(label)) else { throw .malformedSlug(String(label.prefix(64))) }
        return String(label)
    }

    private static func isDigit(_ byte: UInt8) -> Bool { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) }
    private static func isLowercaseLetter(_ byte: UInt8) -> Bool { (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) }

    /// `/acme/api/pets` → (`acme`, `/api/pets`).
    func pathPrefix(_ path: String) throws(Failure) -> (String, String)? {
        let segments = path.split(separator: "/", maxSplits: 2, omittingEmptySubsequences: false)
        // ["", first, "api/…"] or ["", first, "api"]
        guard segments.count >= 3, segments[0].isEmpty, segments[1] != "api" else { return nil }
        let rest = segments[2]
        guard rest == "api" || rest.hasPrefix("api/") || rest.hasPrefix("api?") else { return nil }
        let slug = String(segments[1])
        guard Self.isWellFormedSlug(slug) else { throw .malformedSlug(String(slug.prefix(64))) }
        return (slug, "/" + rest)
    }

    /// The slug grammar of DESIGN §4: `^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$`.
    public static func isWellFormedSlug(_ slug: String) -> Bool {
        let bytes = Array(slug.utf8)
        guard (3...63).contains(bytes.count) else { return false }
        func isAlphanumeric(_ byte: UInt8) -> Bool {
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
        }
        return isAlphanumeric(bytes[0]) && isAlphanumeric(bytes[bytes.count - 1])
            && bytes.allSatisfy { isAlphanumeric($0) || $0 == UInt8(ascii: "-") }
    }
}
