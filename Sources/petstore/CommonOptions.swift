import API
import ArgumentParser
import Database
import EventLog
import Foundation
import Logging
import Operations

/// Options every command that touches the database shares. Each falls back to an environment
/// variable, then to a default, so the same binary works from a shell and from a container.
struct CommonOptions: ParsableArguments {
    @Option(name: .customLong("database-url"), help: "PostgreSQL URL of the schema owner; without it a private cluster runs under --data-dir. (env: DATABASE_URL)")
    var databaseURL: String?

    @Option(name: .customLong("app-database-url"), help: "PostgreSQL URL the server's queries use, a role that owns nothing; defaults to --database-url with a per-transaction role switch. (env: APP_DATABASE_URL)")
    var appDatabaseURL: String?

    @Option(name: .customLong("data-dir"), help: "Folder of the private cluster and local state. (env: PETSTORE_DATA_DIR, default: .petstore)")
    var dataDirectory: String?

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical. (env: LOG_LEVEL, default: info)")
    var logLevel: String?

    @Option(name: .customLong("log-format"), help: "text or json. (env: LOG_FORMAT, default: text)")
    var logFormat: String?

    static let environment = ProcessInfo.processInfo.environment

    var resolvedDataDirectory: URL {
        URL(fileURLWithPath: dataDirectory ?? Self.environment["PETSTORE_DATA_DIR"] ?? ".petstore")
    }

    func validate() throws {
        let level = logLevel ?? Self.environment["LOG_LEVEL"] ?? "info"
        guard Logger.Level(rawValue: level) != nil else {
            throw ValidationError("log level must be trace, debug, info, notice, warning, error or critical, not '\(level)'")
        }
        let format = logFormat ?? Self.environment["LOG_FORMAT"] ?? "text"
        guard ["text", "json"].contains(format) else {
            throw ValidationError("log format must be text or json, not '\(format)'")
        }
    }

    /// Sets up swift-log once for the process and returns the root logger.
    func bootstrapLogging() -> Logger {
        let level = Logger.Level(rawValue: logLevel ?? Self.environment["LOG_LEVEL"] ?? "info") ?? .info
        let json = (logFormat ?? Self.environment["LOG_FORMAT"]) == "json"
        LoggingSystem.bootstrap { label in
            var handler: any LogHandler = json ? JSONLogHandler(label: label) : TextLogHandler(label: label)
            handler.logLevel = level
            return handler
        }
        var logger = Logger(label: "petstore")
        logger.logLevel = level
        return logger
    }

    /// The checkpoint signing key: the file given, else SIGNING_KEY_FILE, else `signing-key` in
    /// the data directory; made there on first use.
    func signer(file: String?) throws -> CheckpointSigner {
        try CheckpointSigner.load(file: URL(fileURLWithPath: file ?? Self.environment["SIGNING_KEY_FILE"]
            ?? resolvedDataDirectory.appending(path: "signing-key").path))
    }

    /// Where the database is: the given server, or the private cluster (started if needed).
    func database(logger: Logger) async throws -> DatabaseTarget {
        if let raw = databaseURL ?? Self.environment["DATABASE_URL"] {
            let owner = try DatabaseURL(raw)
            let app = try (appDatabaseURL ?? Self.environment["APP_DATABASE_URL"]).map { try DatabaseURL($0) } ?? owner
            return DatabaseTarget(ownerURL: owner, appURL: app, cluster: nil)
        }
        let cluster = try await LocalCluster(directory: resolvedDataDirectory, logger: logger).start()
        return DatabaseTarget(ownerURL: cluster.ownerURL, appURL: cluster.appURL, cluster: cluster)
    }
}

struct DatabaseTarget {
    let ownerURL: DatabaseURL
    let appURL: DatabaseURL
    /// The private cluster, when we use one; stopped on exit if this process started it.
    let cluster: RunningCluster?

    func stopClusterIfOurs() {
        if let cluster, cluster.startedHere { cluster.stop() }
    }
}
