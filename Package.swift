// swift-tools-version:6.2
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
]

let postgres: Target.Dependency = .product(name: "PostgresNIO", package: "postgres-nio")
let log: Target.Dependency = .product(name: "Logging", package: "swift-log")
let crypto: Target.Dependency = .product(name: "Crypto", package: "swift-crypto")
let lifecycle: Target.Dependency = .product(name: "ServiceLifecycle", package: "swift-service-lifecycle")
let nioCore: Target.Dependency = .product(name: "NIOCore", package: "swift-nio")
let nioPosix: Target.Dependency = .product(name: "NIOPosix", package: "swift-nio")

let package = Package(
    name: "petstore",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "petstore", targets: ["petstore"]),
    ],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
        // Named because targets import their modules directly (Hummingbird and PostgresNIO
        // bring them in anyway): every module a target imports is declared.
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
    ],
    targets: [
        // Turns Schema/*.sql and Projections/*.sql into Swift source, so the SQL travels
        // inside the binary instead of being looked up relative to the working directory.
        .executableTarget(name: "EmbedSQL", path: "Sources/EmbedSQL", swiftSettings: swiftSettings),
        .plugin(
            name: "EmbedSQLPlugin",
            capability: .buildTool(),
            dependencies: ["EmbedSQL"],
            path: "Sources/EmbedSQLPlugin"
        ),
        // Connections, the local cluster, migrations, and the tenant session: the only way a
        // statement reaches a tenant's rows. See Sources/README.md for what each module owns.
        .target(
            name: "Database",
            dependencies: [postgres, log, crypto, nioCore, nioPosix],
            swiftSettings: swiftSettings,
            plugins: ["EmbedSQLPlugin"]
        ),
        .target(
            name: "EventLog",
            dependencies: ["Database", postgres, log, crypto, lifecycle],
            swiftSettings: swiftSettings
        ),
        .target(name: "Domain", swiftSettings: swiftSettings),
        .target(
            name: "Tenancy",
            dependencies: ["Database", "EventLog", "Domain", postgres, log, crypto, lifecycle],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "Projectors",
            dependencies: ["Database", "EventLog", postgres, log, crypto, lifecycle],
            swiftSettings: swiftSettings,
            plugins: ["EmbedSQLPlugin"]
        ),
        // The application layer: commands, queries, provisioning, idempotency, and the
        // composition of the modules below into what a server runs.
        .target(
            name: "Operations",
            dependencies: [
                "Database", "EventLog", "Tenancy", "Domain", "Projectors", postgres, log, crypto, lifecycle, nioCore,
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: swiftSettings
        ),
        // HTTP: parses, calls one operation, renders. No PostgresNIO here (a test checks).
        .target(
            name: "API",
            dependencies: [
                "Database", "EventLog", "Tenancy", "Domain", "Projectors", "Operations", log, crypto, lifecycle, nioCore,
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "petstore",
            dependencies: [
                "API", "Operations", "Database", "EventLog", "Tenancy", "Projectors", "Domain", postgres, log, crypto, lifecycle, nioCore, nioPosix,
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Hummingbird", package: "hummingbird"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "PetstoreTesting",
            dependencies: ["Database", "Projectors", postgres, log],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "DatabaseTests",
            dependencies: ["Database", "PetstoreTesting", postgres, log],
            swiftSettings: swiftSettings
        ),
        .testTarget(name: "DomainTests", dependencies: ["Domain"], swiftSettings: swiftSettings),
        .testTarget(
            name: "EventLogTests",
            dependencies: ["EventLog", "Database", "PetstoreTesting", postgres, log],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "ProjectorTests",
            dependencies: ["Projectors", "Operations", "EventLog", "Database", "Domain", "PetstoreTesting", postgres, log],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "CLITests",
            dependencies: [
                "Database", "EventLog", "Domain", "Projectors", "Operations", "PetstoreTesting", nioCore,
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "APITests",
            dependencies: [
                "API", "Operations", "Database", "EventLog", "Tenancy", "Domain", "PetstoreTesting", postgres, log, crypto, lifecycle, nioCore,
                nioPosix,
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "ServiceLifecycleTestKit", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
    ]
)
