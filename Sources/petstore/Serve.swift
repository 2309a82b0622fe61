import API
import ArgumentParser
import Database
import EventLog
import Foundation
import Operations
import Projectors
#if canImport(Glibc)
import Glibc
#endif
import Hummingbird
import Logging
import NIOCore
import PostgresNIO
import ServiceLifecycle
import Synchronization
import Tenancy

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Migrate the database and serve the HTTP API until SIGINT or SIGTERM."
    )

    @OptionGroup var options: CommonOptions

    @Option(help: "Address to listen on. (env: HOST, default: 0.0.0.0)")
    var host: String?

    @Option(help: "Port to listen on. (env: PORT, default: 8080)")
    var port: Int?

    @Option(name: .customLong("pool-size"), help: "Most database connections the server opens. (env: POOL_SIZE, default: 20)")
    var poolSize: Int?

    var resolvedPort: Int {
        get throws {
            guard let value = port ?? CommonOptions.environment["PORT"].map({ Int($0) ?? -1 }) else { return 8080 }
            guard (1...65535).contains(value) else { throw ValidationError("port must be a number from 1 to 65535") }
            return value
        }
    }

    @Option(name: .customLong("read-concurrency"), help: "Most tenant reads running at once on one PostgreSQL server; more wait their turn. (env: READ_CONCURRENCY, default: three times this machine's cores)")
    var readConcurrency: Int?

    var resolvedReads: ReadGate.Limits {
        get throws {
            let fallback = 3 * ProcessInfo.processInfo.activeProcessorCount
            let value = readConcurrency ?? CommonOptions.environment["READ_CONCURRENCY"].map({ Int($0) ?? -1 }) ?? fallback
            guard (1...1000).contains(value) else { throw ValidationError("read concurrency must be a number from 1 to 1000") }
            return ReadGate.Limits(capacity: value, wait: try resolvedServer.configuration.connectionWaitTimeout)
        }
    }

    var resolvedPoolSize: Int {
        get throws {
            guard let value = poolSize ?? CommonOptions.environment["POOL_SIZE"].map({ Int($0) ?? -1 }) else { return 20 }
            guard (1...1000).contains(value) else { throw ValidationError("pool size must be a number from 1 to 1000") }
            return value
        }
    }

    @Option(name: .customLong("commit-lanes"), help: "Groups of commands that may commit side by side in one database; 0 commits every command alone. (env: COMMIT_LANES, default: \(TenantDatabase.defaultCommitLanes))")
    var commitLanes: Int?

    var resolvedCommitLanes: Int {
        get throws {
            let value = commitLanes ?? CommonOptions.environment["COMMIT_LANES"].map({ Int($0) ?? -1 }) ?? TenantDatabase.defaultCommitLanes
            guard (0...256).contains(value) else { throw ValidationError("commit lanes must be a number from 0 to 256") }
            return value
        }
    }

    @Option(name: .customLong("request-timeout"), help: "Longest a request may take to its response head before 503, in seconds or with ms, s, m. (env: REQUEST_TIMEOUT, default: 5s)")
    var requestTimeout: String?

    @Option(name: .customLong("connection-wait-timeout"), help: "Longest a request waits for its tenant's share of the pool before 503. (env: CONNECTION_WAIT_TIMEOUT, default: 2s)")
    var connectionWaitTimeout: String?

    @Option(name: .customLong("statement-timeout"), help: "Longest one statement of a request may run. (env: STATEMENT_TIMEOUT, default: 3s)")
    var statementTimeout: String?

    @Option(name: .customLong("lock-timeout"), help: "Longest a request's statement waits for a lock. (env: LOCK_TIMEOUT, default: 2s)")
    var lockTimeout: String?

    @Option(name: .customLong("tenant-pool-share"), help: "Percent of the request pool one tenant's requests may hold at once. (env: TENANT_POOL_SHARE, default: 50)")
    var tenantPoolShare: Int?

    @Option(name: .customLong("header-timeout"), help: "Longest a request's head may take from its first byte. (env: HEADER_TIMEOUT, default: 10s)")
    var headerTimeout: String?

    @Option(name: .customLong("idle-timeout"), help: "Longest a connection may wait with no request in progress. (env: IDLE_TIMEOUT, default: 30s)")
    var idleTimeout: String?

    @Option(name: .customLong("max-connections"), help: "Most client connections served at once. (env: MAX_CONNECTIONS, default: 2048)")
    var maxConnections: Int?

    @Option(name: .customLong("shutdown-timeout"), help: "Longest a graceful shutdown may take before work is cancelled and the process exits. (env: SHUTDOWN_TIMEOUT, default: 15s)")
    var shutdownTimeout: String?

    /// A duration option: a number of seconds, or a number with ms, s, m or h.
    func duration(_ value: String?, environment name: String, default fallback: Duration, label: String) throws -> Duration {
        guard let text = value ?? CommonOptions.environment[name] else { return fallback }
        guard let duration = Self.parseDuration(text), duration > .zero else {
            throw ValidationError("\(label) must be a positive number of seconds, or a number with ms, s, m or h (got '\(text)')")
        }
        return duration
    }

    static func parseDuration(_ text: String) -> Duration? {
        let units: [(String, Int64)] = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000)]
        for (suffix, milliseconds) in units where text.hasSuffix(suffix) {
            guard let number = Int64(text.dropLast(suffix.count)), number >= 0, number < Int64(Int32.max) else { return nil }
            return .milliseconds(number * milliseconds)
        }
        return Int64(text).flatMap { $0 >= 0 && $0 < Int64(Int32.max) ? .seconds($0) : nil }
    }

    var resolvedServer: (configuration: ServerConfiguration, timeouts: StatementTimeouts, shutdown: Duration) {
        get throws {
            let share = tenantPoolShare ?? CommonOptions.environment["TENANT_POOL_SHARE"].map({ Int($0) ?? -1 }) ?? 50
            guard (1...100).contains(share) else { throw ValidationError("the tenant pool share must be a percentage from 1 to 100") }
            let connections = maxConnections ?? CommonOptions.environment["MAX_CONNECTIONS"].map({ Int($0) ?? -1 }) ?? 2048
            guard connections > 0 else { throw ValidationError("max connections must be a positive number") }
            let configuration = ServerConfiguration(
                host: host ?? CommonOptions.environment["HOST"] ?? "0.0.0.0", port: try resolvedPort,
                headerTimeout: try duration(headerTimeout, environment: "HEADER_TIMEOUT", default: .seconds(10), label: "the header timeout"),
                idleTimeout: try duration(idleTimeout, environment: "IDLE_TIMEOUT", default: .seconds(30), label: "the idle timeout"),
                maxConnections: connections,
                requestTimeout: try duration(requestTimeout, environment: "REQUEST_TIMEOUT", default: .seconds(5), label: "the request timeout"),
                connectionWaitTimeout: try duration(connectionWaitTimeout, environment: "CONNECTION_WAIT_TIMEOUT", default: .seconds(2),
                                                    label: "the connection wait timeout"),
                tenantPoolShare: Double(share) / 100
            )
            let timeouts = StatementTimeouts(
                statement: try duration(statementTimeout, environment: "STATEMENT_TIMEOUT", default: .seconds(3), label: "the statement timeout"),
                lock: try duration(lockTimeout, environment: "LOCK_TIMEOUT", default: .seconds(2), label: "the lock timeout")
            )
            let shutdown = try duration(shutdownTimeout, environment: "SHUTDOWN_TIMEOUT", default: .seconds(15), label: "the shutdown timeout")
            return (configuration, timeouts, shutdown)
        }
    }

    @Option(name: .customLong("base-domain"), help: "Domain under which {tenant}.<domain> names a tenant. (env: BASE_DOMAIN, default: petstore.localhost)")
    var baseDomain: String?

    @Option(name: .customLong("tenant-resolution"), help: "Comma-separated strategies: subdomain, path, header. (env: TENANT_RESOLUTION, default: all three)")
    var tenantResolution: String?

    func resolver() throws -> TenantResolver {
        let names = (tenantResolution ?? CommonOptions.environment["TENANT_RESOLUTION"] ?? "subdomain,path,header")
            .split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        var strategies: TenantResolver.Strategies = []
        for name in names {
            switch name {
            case "subdomain": strategies.insert(.subdomain)
            case "path": strategies.insert(.path)
            case "header": strategies.insert(.header)
            default: throw ValidationError("tenant resolution strategies are subdomain, path and header, not '\(name)'")
            }
        }
        let domain = baseDomain ?? CommonOptions.environment["BASE_DOMAIN"] ?? "petstore.localhost"
        guard !domain.isEmpty, domain.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "." || $0 == "-") }) else {
            throw ValidationError("base domain must be a host name such as petstore.localhost")
        }
        return TenantResolver(strategies: strategies, baseDomain: domain)
    }

    @Option(name: .customLong("rate-limits"), help: """
        Per-plan limits over the defaults (free=100/h+10/s,basic=1000/h+25/s,premium=10000/h+100/s,enterprise=100000/h+500/s), \
        as plan=quota/window[+burst[/window]], comma-separated: a quota per fixed window and a burst limit (+N alone: N per second); \
        windows s, m, h, d or seconds; or 'off'. (env: RATE_LIMITS)
        """)
    var rateLimits: String?

    @Option(name: .customLong("rate-limit-failure"), help: "When the limiter's store cannot be reached: open (admit) or closed (503). (env: RATE_LIMIT_FAILURE, default: open)")
    var rateLimitFailure: String?

    @Option(name: .customLong("metrics"), help: "on or off: GET /metrics and the series behind it. (env: METRICS, default: on)")
    var metrics: String?

    @Option(name: .customLong("metrics-tenant-cap"), help: "Tenants with series of their own; the rest are counted as 'other'. (env: METRICS_TENANT_CAP, default: 500)")
    var metricsTenantCap: Int?

    @Option(name: .customLong("idempotency-retention"), help: "How long a keyed command's response is replayed, in seconds or with s, m, h, d. (env: IDEMPOTENCY_RETENTION, default: 24h)")
    var idempotencyRetention: String?

    @Option(name: .customLong("offboarding-retention"), help: "How long an offboarded tenant is kept, suspended, before it is purged; in seconds or with s, m, h, d. (env: OFFBOARDING_RETENTION, default: 30d)")
    var offboardingRetention: String?

    @Option(name: .customLong("signing-key-file"), help: "The Ed25519 key that signs checkpoints, made on first use. (env: SIGNING_KEY_FILE, default: <data-dir>/signing-key)")
    var signingKeyFile: String?

    @Option(name: .customLong("checkpoint-interval"), help: "Seconds between scheduled checkpoints of tenants whose log grew. (env: CHECKPOINT_INTERVAL, default: 900)")
    var checkpointInterval: Int?

    var resolvedCheckpointInterval: Duration {
        get throws {
            let value = checkpointInterval ?? CommonOptions.environment["CHECKPOINT_INTERVAL"].map({ Int($0) ?? -1 }) ?? 900
            guard value > 0 else { throw ValidationError("the checkpoint interval must be a positive number of seconds") }
            return .seconds(value)
        }
    }

    /// Nil: rate limiting is off.
    var resolvedRateLimits: RateLimits? {
        get throws {
            let text = rateLimits ?? CommonOptions.environment["RATE_LIMITS"] ?? ""
            if text == "off" { return nil }
            do {
                return try RateLimits.defaults.overridden(by: text)
            } catch {
                throw ValidationError(error.description)
            }
        }
    }

    var resolvedFailureMode: RateLimiter.FailureMode {
        get throws {
            let text = rateLimitFailure ?? CommonOptions.environment["RATE_LIMIT_FAILURE"] ?? "open"
            guard let mode = RateLimiter.FailureMode(rawValue: text) else { throw ValidationError("rate limit failure mode must be open or closed") }
            return mode
        }
    }

    var resolvedMetrics: (enabled: Bool, cap: Int) {
        get throws {
            let text = metrics ?? CommonOptions.environment["METRICS"] ?? "on"
            guard ["on", "off"].contains(text) else { throw ValidationError("metrics must be on or off") }
            let cap = metricsTenantCap ?? CommonOptions.environment["METRICS_TENANT_CAP"].map({ Int($0) ?? -1 }) ?? 500
            guard cap >= 0 else {
                throw ValidationError("the metrics tenant cap must be a number, 0 or more")
            }
            return (text == "on", cap)
        }
    }

    var resolvedRetention: Duration {
        get throws {
            try Self.period(idempotencyRetention ?? CommonOptions.environment["IDEMPOTENCY_RETENTION"] ?? "24h", label: "idempotency retention")
        }
    }

    var resolvedOffboardingRetention: Duration {
        get throws {
            try Self.period(offboardingRetention ?? CommonOptions.environment["OFFBOARDING_RETENTION"] ?? "30d", label: "offboarding retention")
        }
    }

    /// A period in seconds, or with s, m, h or d.
    static func period(_ text: String, label: String) throws -> Duration {
        let units: [Character: Int] = ["s": 1, "m": 60, "h": 3600, "d": 86_400]
        let (number, unit) = text.last.flatMap { units[$0] }.map { (text.dropLast(), $0) } ?? (Substring(text), 1)
        guard let value = Int(number), value > 0 else {
            throw ValidationError("\(label) must be a positive number of seconds, or with s, m, h or d")
        }
        return .seconds(value * unit)
    }

    func validate() throws {
        _ = try resolvedPort
        _ = try resolvedPoolSize
        _ = try resolvedCommitLanes
        _ = try resolver()
        _ = try resolvedRateLimits
        _ = try resolvedFailureMode
        _ = try resolvedMetrics
        _ = try resolvedRetention
        _ = try resolvedOffboardingRetention
        _ = try resolvedCheckpointInterval
        _ = try resolvedServer
    }

    func run() async throws {
        let logger = options.bootstrapLogging()
        let (configuration, timeouts, shutdownTimeout) = try resolvedServer
        // Find a taken port before anything starts, so the answer is one line and nothing runs.
        try Self.checkPortIsFree(host: configuration.host, port: configuration.port)
        let target = try await options.database(logger: logger)
        defer { target.stopClusterIfOurs() }

        let migrator = try Migrator()
        try await migrator.migrate(target.ownerURL, logger: logger)
        try await ProjectionInstaller().install(target.ownerURL, logger: logger)

        // The pools' role, checked before anything of theirs starts: one that could read past
        // row-level security is refused in one line.
        try await TenantDatabase.checkRole(target.appURL, logger: logger)
        let client = PostgresClient(
            configuration: target.appURL.clientConfiguration(maximumConnections: try resolvedPoolSize, pool: "requests", timeouts: timeouts, busy: true),
            backgroundLogger: logger
        )
        let backgroundClient = PostgresClient(configuration: target.appURL.clientConfiguration(maximumConnections: 8, pool: "background"),
                                              backgroundLogger: logger)
        let metrics = try resolvedMetrics
        var configured = AppDependencies(
            client: client, backgroundClient: backgroundClient, migrator: migrator, resolver: try resolver(),
            rateLimits: try resolvedRateLimits, rateLimitFailureMode: try resolvedFailureMode,
            metricsEnabled: metrics.enabled, tenantLabelCap: metrics.cap, idempotencyRetention: try resolvedRetention,
            signer: try options.signer(file: signingKeyFile),
            checkpointInterval: try resolvedCheckpointInterval, catalogNotifications: true, ownerURL: target.ownerURL,
            offboardingRetention: try resolvedOffboardingRetention, reads: try resolvedReads,
            commitLanes: try resolvedCommitLanes, logger: logger)
        configured.reportPools([("requests", client, try resolvedPoolSize), ("background", backgroundClient, 8)])
        let dependencies = configured
        var application = ApplicationBuilder.application(dependencies, configuration: configuration, logger: logger)
        application.beforeServerStarts {
            // This build reads its own projection versions: one still being built (a rollout
            // without `petstore migrate` first) is finished before the port opens.
            let told = Mutex(false)
            try await dependencies.runtime.finishBuilding(timeout: .seconds(300)) { building in
                guard told.withLock({ told in defer { told = true }; return !told }) else { return }
                logger.notice("waiting for projection versions to be built before serving; petstore migrate does this ahead of a rollout",
                              metadata: ["versions": "\(building.map { "\($0.name) \($0.version)" })"])
            }
            // Mirrors written after a commit that a crash may have cut short.
            await dependencies.catalog.mirrorAll()
            try await dependencies.provisioner.resumeAll()
        }
        let background = dependencies.backgroundServices(outboxDirectory: options.resolvedDataDirectory.appending(path: "outbox"))
        let watchdog = ShutdownWatchdog(deadline: shutdownTimeout + .seconds(5), cluster: target, logger: logger)
        let services: [(String, any Service)] = [("requests pool", client), ("background pool", backgroundClient)]
            + background.map { (String(describing: type(of: $0)), $0) } + [("http server", application)]
        var groupConfiguration = ServiceGroupConfiguration(
            services: services.map { .init(service: watchdog.tracking($0.1, named: $0.0)) },
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger
        )
        // Past the drain deadline the services are cancelled; whatever still hangs then (a
        // connection to a database that does not answer) must not keep the process alive.
        groupConfiguration.maximumGracefulShutdownDuration = shutdownTimeout
        let group = ServiceGroup(configuration: groupConfiguration)
        watchdog.arm()
        do {
            try await group.run()
        } catch let error as IOError where error.errnoCode == EADDRINUSE {
            throw ServeError("cannot listen on \(configuration.host):\(configuration.port): the address is already in use")
        } catch let error as IOError {
            throw ServeError("cannot listen on \(configuration.host):\(configuration.port): \(error.description)")
        }
        logger.info("server stopped")
    }
}

extension Serve {
    static func checkPortIsFree(host: String, port: Int) throws {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { return }
        defer { close(descriptor) }
        var reuse: Int32 = 1
        setsockopt(descriptor, SOL_SOCKET, SO_REUSEADDR, &reuse, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr(host == "localhost" ? "127.0.0.1" : host)
        guard address.sin_addr.s_addr != INADDR_NONE || host == "255.255.255.255" else { return }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
        if !bound && errno == EADDRINUSE {
            throw ServeError("cannot listen on \(host):\(port): the address is already in use")
        }
    }
}

struct ServeError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
