import API
import ArgumentParser
import Database
import Projectors
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Hummingbird
import Logging
import NIOCore
import PostgresNIO
import ServiceLifecycle
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

    var resolvedPoolSize: Int {
        get throws {
            guard let value = poolSize ?? CommonOptions.environment["POOL_SIZE"].map({ Int($0) ?? -1 }) else { return 20 }
            guard (1...1000).contains(value) else { throw ValidationError("pool size must be a number from 1 to 1000") }
            return value
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

    func validate() throws {
        _ = try resolvedPort
        _ = try resolvedPoolSize
        _ = try resolver()
    }

    func run() async throws {
        let logger = options.bootstrapLogging()
        let configuration = ServerConfiguration(host: host ?? CommonOptions.environment["HOST"] ?? "0.0.0.0", port: try resolvedPort)
        // Find a taken port before anything starts, so the answer is one line and nothing runs.
        try Self.checkPortIsFree(host: configuration.host, port: configuration.port)
        let target = try await options.database(logger: logger)
        defer { target.stopClusterIfOurs() }

        let migrator = try Migrator()
        try await migrator.migrate(target.ownerURL, logger: logger)
        try await ProjectionInstaller().install(target.ownerURL, logger: logger)

        let client = PostgresClient(
            configuration: target.appURL.clientConfiguration(maximumConnections: try resolvedPoolSize),
            backgroundLogger: logger
        )
        let backgroundClient = PostgresClient(configuration: target.appURL.clientConfiguration(maximumConnections: 6), backgroundLogger: logger)
        let dependencies = AppDependencies(client: client, backgroundClient: backgroundClient, migrator: migrator, resolver: try resolver(),
                                           logger: logger)
        var application = ApplicationBuilder.application(dependencies, configuration: configuration, logger: logger)
        application.beforeServerStarts {
            try await dependencies.provisioner.resumeAll()
        }
        let background = dependencies.backgroundServices(outboxDirectory: options.resolvedDataDirectory.appending(path: "outbox"))
        let group = ServiceGroup(
            configuration: .init(
                services: [.init(service: client), .init(service: backgroundClient)] + background.map { .init(service: $0) } + [.init(service: application)],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger
            )
        )
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
