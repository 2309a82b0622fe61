import Foundation
import PostgresNIO

/// A parsed `postgres://user:password@host:port/database` address.
///
/// Only the forms libpq users write every day are accepted: `postgres` or `postgresql` scheme,
/// a host, an optional port, a user, an optional password and a database name, plus
/// `sslmode=disable|prefer|require` as a query item.
public struct DatabaseURL: Sendable, Equatable, CustomStringConvertible {
    public enum TLSMode: String, Sendable { case disable, prefer, require }

    public var host: String
    public var port: Int
    public var username: String
    public var password: String?
    public var database: String
    public var tls: TLSMode

    public init(host: String, port: Int = 5432, username: String, password: String?, database: String, tls: TLSMode = .disable) {
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.database = database
        self.tls = tls
    }

    public init(_ string: String) throws(DatabaseError) {
        func invalid(_ why: String) -> DatabaseError {
            DatabaseError(.invalidURL, "DATABASE_URL is not valid: \(why) (expected postgres://user:password@host:port/database)")
        }
        guard let components = URLComponents(string: string.trimmingCharacters(in: .whitespaces)) else {
            throw invalid("it is not a URL")
        }
        guard let scheme = components.scheme?.lowercased(), scheme == "postgres" || scheme == "postgresql" else {
            throw invalid("the scheme must be postgres or postgresql")
        }
        guard let host = components.host, !host.isEmpty else { throw invalid("it has no host") }
        guard let user = components.user, !user.isEmpty else { throw invalid("it has no user name") }
        let database = String(components.path.drop { $0 == "/" })
        guard !database.isEmpty, !database.contains("/") else { throw invalid("it has no database name") }
        if let port = components.port, !(1...65535).contains(port) { throw invalid("the port is out of range") }
        var tls = TLSMode.disable
        for item in components.queryItems ?? [] {
            switch item.name {
            case "sslmode":
                switch item.value ?? "" {
                case "disable", "allow": tls = .disable
                case "prefer": tls = .prefer
                case "require", "verify-ca", "verify-full": tls = .require
                default: throw invalid("sslmode must be disable, prefer or require")
                }
            case "application_name", "connect_timeout": continue
            default: throw invalid("unknown parameter '\(item.name)'")
            }
        }
        self.init(
            host: host,
            port: components.port ?? 5432,
            username: user.removingPercentEncoding ?? user,
            password: components.password.map { $0.removingPercentEncoding ?? $0 },
            database: database.removingPercentEncoding ?? database,
            tls: tls
        )
    }

    /// The same server and credentials, another database.
    public func with(database: String) -> DatabaseURL {
        var copy = self
        copy.database = database
        return copy
    }

    /// The same login and database, on another port.
    public func with(port: Int) -> DatabaseURL {
        var copy = self
        copy.port = port
        return copy
    }

    /// The same server and database, another login.
    public func with(username: String, password: String?) -> DatabaseURL {
        var copy = self
        copy.username = username
        copy.password = password
        return copy
    }

    /// The URL with the password masked, for logs and error messages.
    public var description: String {
        "postgres://\(username)\(password == nil ? "" : ":****")@\(host):\(port)/\(database)"
    }

    /// The URL with its password, for handing to tools such as `psql` and `pgbench`.
    public var connectionString: String {
        var components = URLComponents()
        components.scheme = "postgres"
        components.user = username
        components.password = password
        components.host = host
        components.port = port
        components.path = "/" + database
        return components.string ?? description
    }

    /// `pool` names the pool to the server (`application_name`), so that its connections can be
    /// counted in `pg_stat_activity`. `busy`: a pool in constant use (the request pool).
    /// A pool's configuration. `timeouts` become the connections' `statement_timeout` and
    /// `lock_timeout` (sent at connect, so no statement and no round trip is spent on them).
    public func clientConfiguration(
        maximumConnections: Int = 20, pool: String? = nil, timeouts: StatementTimeouts? = nil, busy: Bool = false
    ) -> PostgresClient.Configuration {
        let tls: PostgresClient.Configuration.TLS
        switch self.tls {
        case .disable: tls = .disable
        case .prefer: tls = .prefer(.makeClientConfiguration())
        case .require: tls = .require(.makeClientConfiguration())
        }
        var configuration = PostgresClient.Configuration(
            host: host, port: port, username: username, password: password, database: database, tls: tls
        )
        configuration.options.maximumConnections = maximumConnections
        configuration.options.connectTimeout = .seconds(5)
        if busy {
            // A pool that serves requests sends no keep-alives: every connection handed back
            // would schedule a keep-alive timer (a task and a dispatch timer), a measurable part
            // of a read's cost, for connections that are rarely idle long enough to need one.
            // Its first two connections stay open, so they are handed back without the idle
            // timer the others start (peak RSS under a shared tenant's load: 113 -> 92 MB).
            // (Keeping all of them open made the pool's circuit breaker trip during an outage
            // and keep refusing after it; two pass OutageTests.)
            configuration.options.keepAliveBehavior = nil
            configuration.options.minimumConnections = 2
        }
        // Every pooled connection is the application role from its first statement: a login
        // as the schema owner or a superuser (DATABASE_URL alone) must not see across tenants.
        // Set in the startup packet, so RESET ROLE and RESET ALL come back to it.
        configuration.options.additionalStartupParameters = [("role", LocalCluster.appRole)]
        if let pool { configuration.options.additionalStartupParameters.append(("application_name", PoolName.applicationName(pool))) }
        // Our transactions run statement after statement: one left open between them for this
        // long was lost by its task (cancelled between its statements, say), and its locks
        // would hold up every writer and purge of its tenant for good. PostgreSQL ends it.
        configuration.options.additionalStartupParameters.append(
            ("idle_in_transaction_session_timeout", "\(Self.idleInTransactionTimeout.milliseconds)ms"))
        if let timeouts {
            configuration.options.additionalStartupParameters += [
                ("statement_timeout", "\(timeouts.statement.milliseconds)ms"),
                ("lock_timeout", "\(timeouts.lock.milliseconds)ms"),
            ]
        }
        return configuration
    }
}

/// How long one statement may run, and wait for a lock, on the connections that serve requests.
extension DatabaseURL {
    /// How long a pooled connection may sit in a transaction between two statements.
    public static let idleInTransactionTimeout: Duration = .seconds(30)
}

public struct StatementTimeouts: Sendable, Equatable {
    public var statement: Duration
    public var lock: Duration

    public init(statement: Duration = .seconds(3), lock: Duration = .seconds(2)) {
        self.statement = statement
        self.lock = lock
    }
}

extension Duration {
    /// Whole milliseconds, at least 1 (0 would mean "no timeout" to PostgreSQL).
    var milliseconds: Int64 {
        max(1, components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000)
    }
}

/// The `application_name` of a pool of this process.
public enum PoolName {
    public static func applicationName(_ pool: String) -> String {
        "petstore:\(ProcessInfo.processInfo.processIdentifier):\(pool)"
    }
}
