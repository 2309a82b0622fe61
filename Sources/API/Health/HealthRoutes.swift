import Database
import Foundation
import Hummingbird
import Logging
import Operations

/// `/health/live` says the process answers; `/health/ready` that the database is reachable and
/// carries every migration this build knows, so a load balancer only sends traffic that can succeed.
struct HealthRoutes<Context: RequestContext> {
    let dependencies: AppDependencies
    let timeout: Duration

    private struct Status: ResponseEncodable {
        let status: String
        let migrations: Int?
    }

    func register(on router: Router<Context>, table: RouteTable) {
        // In the table for the 405 answers' Allow; the OpenAPI document lists them already.
        for path in ["/health/live", "/health/ready"] { table.add(.init(method: .get, path: path, roles: [], tenantScoped: false)) }
        router.get("/health/live") { _, _ in Status(status: "ok", migrations: nil) }
        router.get("/health/ready") { _, context in try await ready(logger: context.logger) }
    }

    private func ready(logger: Logger) async throws -> Status {
        let dependencies = self.dependencies
        let outcome: Result<Migrator.Status, any Error>? = await withTaskGroup(of: Result<Migrator.Status, any Error>?.self) { group in
            group.addTask {
                do {
                    return .success(try await dependencies.migrationStatus())
                } catch {
                    return .failure(error)
                }
            }
            group.addTask { [timeout] in
                try? await Task.sleep(for: timeout)
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
        switch outcome {
        case .success(let status) where status.isCurrent:
            return Status(status: "ready", migrations: status.applied.count)
        case .success(let status):
            throw Problem.serviceUnavailable("The database is missing \(status.pending.count) migration(s): run `petstore migrate`.")
        case .failure(let error):
            logger.warning("readiness check failed", metadata: ["error": "\(DatabaseURL.describe(error))"])
            throw Problem.serviceUnavailable("The database is not reachable.")
        case nil:
            throw Problem.serviceUnavailable("The database did not answer within \(timeout).")
        }
    }
}
