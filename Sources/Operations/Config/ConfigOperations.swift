import Database
import Domain
import EventLog
import Foundation
import Logging
import Projectors
import Tenancy

/// What the API does with a tenant's configuration.
public struct ConfigOperations: Sendable {
    let runtime: ProjectionRuntime
    let logger: Logger

    public init(runtime: ProjectionRuntime, logger: Logger) {
        self.runtime = runtime
        self.logger = logger
    }

    /// Every effective value: the defaults, overridden by what the tenant set.
    public func values(_ handle: TenantHandle) async throws -> [String: JSONValue] {
        var values: [String: JSONValue] = [:]
        for (key, value) in TenantConfig.defaults { values[key] = try Self.json(value) }
        let stored = try await handle.readTenant { session in
            var stored: [(String, String)] = []
            let rows = try await session.query("SELECT key, value::text FROM tenant_config WHERE tenant_id = \(session.tenant)")
            for try await row in rows.decode((String, String).self) { stored.append(row) }
            return stored
        }
        for (key, value) in stored { values[key] = try CanonicalJSON.parse(value) }
        return values
    }

    /// Runs a configuration command in the unit of work `session`, the read model brought up to
    /// date in it too.
    public func execute(
        _ handle: TenantHandle, metadata: EventMetadata, in session: TenantSession, _ command: @Sendable () -> TenantConfigCommand
    ) async throws -> CommandRunner<TenantConfig>.Outcome {
        let outcome = try await ConfigCommands.runner(store: handle.store).run(
            id: handle.tenant.id.rawValue, metadata: metadata, in: session) { _ in command() }
        if let append = outcome.append {
            try await runtime.projectInline(session, projections: ["tenant_config"], through: append.lastSeq, appended: outcome.recorded,
                                            using: handle.store.database)
        }
        return outcome
    }

    /// A value as the API shows it.
    public static func json(_ value: ConfigValue) throws -> JSONValue {
        try CanonicalJSON.parse(try TenantConfigProjector.valueEncoder.encode(value))
    }
}
