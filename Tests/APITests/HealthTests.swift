import API
import Database
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Operations
import PetstoreTesting
import PostgresNIO
import Testing

@Suite struct HealthTests {
    let logger = TestCluster.logger

    func withApp(_ url: DatabaseURL, _ body: @Sendable (any TestClientProtocol) async throws -> Void) async throws {
        let client = PostgresClient(configuration: url.clientConfiguration(maximumConnections: 2), backgroundLogger: logger)
        let router = ApplicationBuilder.router(
            AppDependencies(client: client, migrator: try Migrator(), logger: logger), configuration: ServerConfiguration(readinessTimeout: .seconds(2))
        )
        let application = Application(router: router, services: [client], logger: logger)
        try await application.test(.router, body)
    }

    @Test func `live and ready answer 200 on a migrated database`() async throws {
        let database = try await TestCluster.shared.database()
        try await withApp(database.appURL) { client in
            try await client.execute(uri: "/health/live", method: .get) { response in
                #expect(response.status == .ok)
            }
            try await client.execute(uri: "/health/ready", method: .get) { response in
                #expect(response.status == .ok)
                #expect(String(buffer: response.body).contains("\"ready\""))
            }
        }
    }

    @Test func `ready is 503 with a problem body while migrations are pending`() async throws {
        let database = try await TestCluster.shared.emptyDatabase()
        try await withApp(database.ownerURL) { client in
            try await client.execute(uri: "/health/ready", method: .get) { response in
                #expect(response.status == .serviceUnavailable)
                #expect(response.headers[.contentType] == "application/problem+json")
                #expect(String(buffer: response.body).contains("petstore migrate"))
            }
        }
    }

    @Test func `ready is 503 with a problem body when the database is stopped, and live stays 200`() async throws {
        let directory = FileManager.default.temporaryDirectory.appending(path: "petstore-ready-\(UUID().uuidString.prefix(8))")
        defer { try? FileManager.default.removeItem(at: directory) }
        let cluster = try await LocalCluster(directory: directory, settings: TestCluster.fastSettings, logger: logger).start()
        try await Migrator().migrate(cluster.ownerURL, logger: logger)
        try await withApp(cluster.appURL) { client in
            try await client.execute(uri: "/health/ready", method: .get) { response in
                #expect(response.status == .ok)
            }
            cluster.stop()
            try await client.execute(uri: "/health/ready", method: .get) { response in
                #expect(response.status == .serviceUnavailable)
                #expect(response.headers[.contentType] == "application/problem+json")
                let body = String(buffer: response.body)
                #expect(body.contains("\"status\":503"))
            }
            try await client.execute(uri: "/health/live", method: .get) { response in
                #expect(response.status == .ok)
            }
        }
    }

    @Test func `an unknown route is a problem+json 404`() async throws {
        let database = try await TestCluster.shared.database()
        try await withApp(database.appURL) { client in
            try await client.execute(uri: "/no/such/route", method: .get) { response in
                #expect(response.status == .notFound)
                #expect(response.headers[.contentType] == "application/problem+json")
                #expect(String(buffer: response.body).contains("\"title\":\"Not Found\""))
            }
        }
    }
}
