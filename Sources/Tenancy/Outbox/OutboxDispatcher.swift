import Database
import EventLog
import Foundation
import Logging
import PostgresNIO
import ServiceLifecycle

/// Where outbox messages go: email, a webhook, a queue. Delivery must be idempotent per message
/// id, since a crash between delivering and marking delivered sends a message again.
public protocol OutboxSink: Sendable {
    func deliver(id: Int64, tenant: TenantID?, kind: String, payload: String) async throws
}

/// The default sink: a log line and a JSON file per message under a folder.
public struct FileOutboxSink: OutboxSink {
    let directory: URL
    let logger: Logger

    public init(directory: URL, logger: Logger) {
        self.directory = directory
        self.logger = logger
    }

    public func deliver(id: Int64, tenant: TenantID?, kind: String, payload: String) async throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let file = directory.appending(path: String(format: "%012lld-%@.json", id, kind))
        try Data(payload.utf8).write(to: file, options: .atomic)
        logger.info("outbox message delivered", metadata: ["kind": "\(kind)", "tenant": "\(tenant?.description ?? "-")", "file": "\(file.path)"])
    }
}

/// Delivers the transactional outbox: messages written in the same transaction as the change
/// that caused them, sent after commit, at least once.
public struct OutboxDispatcher: Service {
    let client: PostgresClient
    let sink: any OutboxSink
    let interval: Duration
    let logger: Logger

    public init(client: PostgresClient, sink: any OutboxSink, interval: Duration = .milliseconds(500), logger: Logger) {
        self.client = client
        self.sink = sink
        self.interval = interval
        self.logger = logger
    }

    public func run() async throws {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            do {
                while try await dispatchBatch() > 0 {}
            } catch {
                logger.warning("outbox dispatch failed; will retry", metadata: ["error": "\(DatabaseURL.describe(error))"])
            }
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
        }
    }

    /// Tries up to `batch` pending messages; returns how many were delivered.
    @discardableResult
    public func dispatchBatch(_ batch: Int = 50) async throws -> Int {
        try await client.withTransaction(logger: logger) { connection in
            let rows = try await connection.query(
                "SELECT id, tenant_id, kind, payload, attempts FROM outbox_pending(\(batch)::integer)", logger: logger)
            var messages: [(Int64, UUID?, String, String, Int)] = []
            for try await row in rows.decode((Int64, UUID?, String, String, Int).self) { messages.append(row) }
            var deliveredCount = 0
            for (id, tenant, kind, payload, _) in messages {
                var delivered = true
                do {
                    try await sink.deliver(id: id, tenant: tenant.map(TenantID.init), kind: kind, payload: payload)
                } catch {
                    delivered = false
                    logger.warning("outbox message not delivered; will retry", metadata: ["id": "\(id)", "error": "\(error)"])
                }
                try await connection.execute("SELECT outbox_settle(\(id), \(delivered))", logger: logger)
                if delivered { deliveredCount += 1 }
            }
            return deliveredCount
        }
    }
}
