import Database
import Foundation
import Logging
import PostgresNIO
import ServiceLifecycle
import Tenancy

/// Drops what this process cached of a tenant (its catalog record, its keys' principals, where
/// it lives) when another process changes it.
///
/// Catalog changes notify `Catalog.changesChannel` inside their own transaction, so the message
/// arrives only if they commit; they are rare (onboarding, plans, users, keys, migrations), so the
/// notification queue's commit lock costs nothing on the hot paths. Each time the listener
/// (re)connects it forgets everything, since notifications sent while it was away are lost; the
/// caches' TTLs are only a last resort.
public struct CatalogInvalidation: Service {
    let client: PostgresClient
    let catalog: Catalog
    let authenticator: Authenticator
    let databases: [TenantDatabase]
    let logger: Logger

    public init(client: PostgresClient, catalog: Catalog, authenticator: Authenticator, databases: [TenantDatabase], logger: Logger) {
        self.client = client
        self.catalog = catalog
        self.authenticator = authenticator
        self.databases = databases
        self.logger = logger
    }

    public func run() async throws {
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            do {
                try await client.withConnection { connection in
                    try await connection.listen(on: Catalog.changesChannel) { notifications in
                        forget("*")
                        for try await notification in notifications.cancelOnGracefulShutdown() {
                            forget(notification.payload)
                        }
                    }
                }
            } catch {
                logger.debug("catalog notification listener restarts", metadata: ["error": "\(DatabaseURL.describe(error))"])
                try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(1)) }
            }
        }
    }

    /// `*` (everything), `platform` (platform keys) or a tenant's id.
    func forget(_ payload: String) {
        if payload == "platform" { return authenticator.forget(tenant: nil, platform: true) }
        let tenant = UUID(uuidString: payload).map(TenantID.init)
        if tenant == nil && payload != "*" { return }
        catalog.forget(tenant: tenant)
        if let tenant { authenticator.forget(tenant: tenant) } else { authenticator.invalidate() }
        for database in databases {
            database.forgetHome(of: tenant)
            // A tenant that left its database of its own (dropped, so retired here) may have
            // moved back into one, which has the same name: pooled again once the catalog says
            // so, never for a tenant that is gone (a pool of a dropped database waits on it).
            if let tenant, let pools = database.homePools {
                Task {
                    let name = HomeDatabases.name(for: tenant)
                    guard let home = try? await database.home(of: tenant), home.placement == .database, home.location == name else { return }
                    await pools.reinstate(server: home.server, database: name)
                }
            }
        }
    }
}
