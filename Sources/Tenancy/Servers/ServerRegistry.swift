import Database
import Foundation
import Logging
import PostgresNIO

/// The PostgreSQL servers tenants may be placed on, by name.
///
/// `main` is the server of `DATABASE_URL` (or the embedded cluster) and holds the control plane.
/// Others are added with a URL whose login may create databases there; the URL is stored for
/// the platform's own connections and never shown again: listings give host, port and database
/// only, and the serving role cannot read it back.
public struct ServerRegistry: Sendable {
    public struct Server: Sendable, Equatable {
        public let name: String
        /// `host:port/database`, or `DATABASE_URL` for main: never a user or a password.
        public let display: String
        public let addedAt: Date
        /// Tenants placed on it.
        public let tenants: Int
    }

    public static let main = "main"

    let client: PostgresClient
    let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    public func list() async throws(TenancyError) -> [Server] {
        do {
            var servers: [Server] = []
            let rows = try await client.query("""
                SELECT s.name, s.display, s.added_at, (SELECT count(*) FROM tenants t WHERE t.server = s.name)::bigint
                  FROM servers s ORDER BY s.name = 'main' DESC, s.name
                """, logger: logger)
            for try await (name, display, added, tenants) in rows.decode((String, String, Date, Int64).self) {
                servers.append(Server(name: name, display: display, addedAt: added, tenants: Int(tenants)))
            }
            return servers
        } catch {
            throw TenancyError.storage("the servers could not be read", cause: error)
        }
    }

    public func server(named name: String) async throws(TenancyError) -> Server? {
        try await list().first { $0.name == name }
    }

    /// Registers a server after checking that the URL reaches PostgreSQL 15 or later with a login
    /// that may create databases (onboarding makes one per `database` tenant there).
    @discardableResult
    public func add(name: String, url raw: String) async throws(TenancyError) -> Server {
        var problems: [TenancyError.FieldError] = []
        if name.range(of: "^[a-z0-9][a-z0-9-]{0,30}$", options: .regularExpression) == nil {
            problems.append(.init(field: "name", message: "must be 1 to 31 lowercase letters, digits or hyphens, starting with a letter or digit"))
        }
        let url: DatabaseURL?
        do {
            url = try DatabaseURL(raw)
        } catch {
            url = nil
            problems.append(.init(field: "url", message: error.message.replacingOccurrences(of: "DATABASE_URL is not valid: ", with: "not a valid URL: ")))
        }
        guard problems.isEmpty, let url else { throw TenancyError(.invalid, "the server cannot be added", fieldErrors: problems) }
        if name == Self.main { throw TenancyError(.conflict, "main is the server of DATABASE_URL and is always there") }
        try await check(url)
        let display = "\(url.host):\(url.port)/\(url.database)"
        do {
            try await client.query("INSERT INTO servers (name, url, display) VALUES (\(name), \(url.connectionString), \(display))",
                                   logger: logger).consume()
        } catch let error as PSQLError where error.serverInfo?[.sqlState] == "23505" {
            throw TenancyError(.conflict, "a server named \(name) is registered already")
        } catch {
            throw TenancyError.storage("the server could not be registered", cause: error)
        }
        logger.notice("server registered", metadata: ["server": "\(name)", "at": "\(display)"])
        return Server(name: name, display: display, addedAt: Date(), tenants: 0)
    }

    /// Forgets a server; refused while any tenant (in any state) is placed on it, and for main.
    public func remove(name: String) async throws(TenancyError) {
        if name == Self.main { throw TenancyError(.conflict, "main holds the control plane and cannot be removed") }
        guard let server = try await server(named: name) else { throw TenancyError(.notFound, "no server is named \(name)") }
        guard server.tenants == 0 else {
            throw TenancyError(.conflict, "\(server.tenants) tenant(s) are placed on \(name): move or purge them first")
        }
        do {
            try await client.query("DELETE FROM servers WHERE name = \(name)", logger: logger).consume()
        } catch let error as PSQLError where error.serverInfo?[.sqlState] == "23503" {
            throw TenancyError(.conflict, "a tenant was placed on \(name) meanwhile: move or purge it first")
        } catch {
            throw TenancyError.storage("the server could not be removed", cause: error)
        }
        logger.notice("server removed", metadata: ["server": "\(name)"])
    }

    private func check(_ url: DatabaseURL) async throws(TenancyError) {
        let facts: (Int, Bool)
        do {
            facts = try await url.withConnection(logger: logger) { connection in
                let rows = try await connection.query("""
                    SELECT current_setting('server_version_num')::int, r.rolsuper OR r.rolcreatedb
                      FROM pg_roles r WHERE r.rolname = current_user
                    """, logger: logger)
                return try await rows.decode((Int, Bool).self).first(where: { _ in true }) ?? (0, false)
            }
        } catch {
            // The server by host, port and database only, and the driver's reason.
            let reason = DatabaseURL.describe(error).replacingOccurrences(of: url.description, with: "\(url.host):\(url.port)/\(url.database)")
            throw TenancyError(.invalid, "the server could not be reached", fieldErrors: [.init(field: "url", message: reason)])
        }
        if facts.0 < 150_000 {
            throw TenancyError(.invalid, "the server runs PostgreSQL \(facts.0 / 10_000); 15 or later is needed",
                               fieldErrors: [.init(field: "url", message: "must reach PostgreSQL 15 or later")])
        }
        if !facts.1 {
            throw TenancyError(.invalid, "the URL's login may not create databases there",
                               fieldErrors: [.init(field: "url", message: "the login needs CREATEDB (or to be a superuser)")])
        }
    }
}

extension ServerRegistry {
    /// Servers' logins by name, for the platform's own connections to databases of their own:
    /// read with the owner's login (the serving role cannot read them) each time a pool to one
    /// of their databases opens, so a server's changed login is used from the next pool on.
    /// `main` is the owner's own server.
    public static func directory(owner: DatabaseURL, logger: Logger) -> HomePools.Directory {
        { name in
            if name == main { return owner }
            let stored = try await owner.withConnection(logger: logger) { connection in
                try await connection.query("SELECT url FROM servers WHERE name = \(name)", logger: logger)
                    .decode(String.self).first(where: { _ in true })
            }
            guard let stored else { throw DatabaseError(.unreachable, "no server is named \(name)") }
            return try DatabaseURL(stored)
        }
    }
}
