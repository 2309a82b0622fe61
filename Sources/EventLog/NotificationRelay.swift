import Database
import Foundation
import Logging
import PostgresNIO
import ServiceLifecycle

/// Carries append wake-ups between processes over LISTEN/NOTIFY.
///
/// A NOTIFY inside the append transaction serializes every committing append on PostgreSQL's
/// notification queue lock, one commit at a time across every tenant. So appends never notify;
/// this relay collects the tenants appended to in this process and sends at most one NOTIFY per
/// `interval`, from outside any append transaction. Readers also poll, so a lost notification
/// delays a reader by at most its poll interval and never loses an event.
public struct NotificationRelay: Service {
    public static let channel = "petstore_events"

    let client: PostgresClient
    let signal: AppendSignal
    let interval: Duration
    let logger: Logger
    /// Tags our own notifications so we do not wake ourselves twice.
    let processTag = UUID().uuidString.prefix(8).lowercased()

    public init(client: PostgresClient, signal: AppendSignal, interval: Duration = .milliseconds(20), logger: Logger) {
        self.client = client
        self.signal = signal
        self.interval = interval
        self.logger = logger
    }

    public func run() async throws {
        await withDiscardingTaskGroup { group in
            group.addTask { await listen() }
            group.addTask { await send() }
        }
    }

    /// Forwards local appends, coalesced per interval.
    private func send() async {
        let local = signal.subscribe(origins: [.local])
        var pending = Set<TenantID>()
        var lastSent = ContinuousClock.now - interval
        await withGracefulShutdownHandler {
            for await tenants in local.cancelOnGracefulShutdown() {
                pending.formUnion(tenants)
                let wait = lastSent + interval - .now
                if wait > .zero { try? await Task.sleep(for: wait) }
                // Whatever arrived while we slept goes out in the same notification.
                let payload = Self.payload(tag: String(processTag), tenants: pending)
                pending.removeAll()
                lastSent = .now
                do {
                    try await client.query("SELECT pg_notify(\(Self.channel), \(payload))", logger: logger).consume()
                } catch {
                    logger.debug("could not send append notification", metadata: ["error": "\(DatabaseURL.describe(error))"])
                }
            }
        } onGracefulShutdown: {}
    }

    /// Wakes local readers for appends made by other processes; reconnects after failures.
    private func listen() async {
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            do {
                try await client.withConnection { connection in
                    try await connection.listen(on: Self.channel) { notifications in
                        for try await notification in notifications.cancelOnGracefulShutdown() {
                            guard let (tag, tenants) = Self.parse(notification.payload), tag != processTag else { continue }
                            signal.publish(tenants, origin: .remote)
                        }
                    }
                }
            } catch {
                logger.debug("append notification listener restarts", metadata: ["error": "\(DatabaseURL.describe(error))"])
                try? await Task.sleep(for: .seconds(1))
            }
        }
    }

    /// `tag:uuid,uuid,…`; past PostgreSQL's 8000-byte payload limit, `tag:*` (every tenant).
    static func payload(tag: String, tenants: Set<TenantID>) -> String {
        let list = tenants.map(\.description).sorted().joined(separator: ",")
        return list.utf8.count + tag.utf8.count < 7900 ? "\(tag):\(list)" : "\(tag):*"
    }

    static func parse(_ payload: String) -> (String, Set<TenantID>)? {
        guard let colon = payload.firstIndex(of: ":") else { return nil }
        let tag = String(payload[..<colon])
        let body = payload[payload.index(after: colon)...]
        if body == "*" { return (tag, []) }
        let tenants = body.split(separator: ",").compactMap { UUID(uuidString: String($0)).map(TenantID.init) }
        return (tag, Set(tenants))
    }
}
