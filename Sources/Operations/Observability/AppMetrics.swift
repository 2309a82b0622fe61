import CoreMetrics
import Database
import EventLog
import Foundation
import Logging
import PostgresNIO
import Projectors
import Prometheus
import Synchronization
import Tenancy

/// The process's metrics, rendered at `GET /metrics` in the Prometheus text format.
///
/// Request and event series go through swift-metrics with a factory of our own (not the global
/// `MetricsSystem`), so that several apps in one process, as in the tests, keep separate counts.
/// Gauges that describe the database (projection progress, pool connections) are read when
/// scraped rather than kept up to date on every change.
public final class AppMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    let factory: PrometheusMetricsFactory
    let tenants: TenantLabels
    let logger: Logger
    private let pendingAppends = Mutex<[TenantID: [String: Int]]>([:])

    /// `tenantLabelCap`: how many tenants get a label of their own; the rest share `other`.
    public init(tenantLabelCap: Int = 500, logger: Logger) {
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = [
            .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25),
            .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2.5), .seconds(5),
        ]
        self.registry = registry
        self.factory = factory
        self.tenants = TenantLabels(cap: tenantLabelCap)
        self.logger = logger
    }

    /// Remembers a tenant's slug as its label (when under the cap) and returns the label.
    @discardableResult
    public func label(tenant id: TenantID, slug: String) -> String {
        tenants.label(id, slug: slug)
    }

    struct RequestSeries: Hashable {
        let tenant: String
        let endpoint: String
        let method: String
        let status: Int
    }

    /// The handles of each series, made once: making them goes through the registry's lock and
    /// builds label strings, which is most of what a request's metrics would otherwise cost.
    private let requestHandles = Mutex<[RequestSeries: (count: CoreMetrics.Counter, duration: CoreMetrics.Timer)]>([:])

    public func request(tenant: String?, endpoint: String, method: String, status: Int, duration: Duration) {
        let series = RequestSeries(tenant: tenant ?? "none", endpoint: endpoint, method: method, status: status)
        let handles = requestHandles.withLock { handles in
            if let known = handles[series] { return known }
            let made = (
                CoreMetrics.Counter(label: "api_requests_total",
                        dimensions: [("tenant", series.tenant), ("endpoint", endpoint), ("method", method), ("status", "\(status)")],
                        factory: factory),
                CoreMetrics.Timer(label: "api_request_duration_seconds", dimensions: [("tenant", series.tenant), ("endpoint", endpoint)], factory: factory)
            )
            handles[series] = made
            return made
        }
        handles.count.increment()
        handles.duration.recordNanoseconds(duration.nanoseconds)
    }

    public func rateLimited(tenant id: TenantID, slug: String) {
        Counter(label: "rate_limited_requests_total", dimensions: [("tenant", tenants.label(id, slug: slug))], factory: factory).increment()
    }

    /// Counts committed appends, by event type. Kept by tenant id until the next scrape, which
    /// names the tenants: an append may be the tenant's very first, not yet visible to a lookup.
    public func appended(tenant: TenantID, types: [String: Int]) {
        pendingAppends.withLock { pending in
            for (type, count) in types { pending[tenant, default: [:]][type, default: 0] += count }
        }
    }

    /// How long events took from being recorded to reaching a read model.
    public func projected(_ name: String, lags seconds: [Double]) {
        let histogram = registry.makeValueHistogram(
            name: "projection_lag_seconds", labels: [("projection", name)],
            buckets: [0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30])
        for lag in seconds { histogram.record(lag) }
    }

    private let reportedStoreUsage = Mutex<(statements: Int, takes: Int)>((0, 0))
    private let reportedGroupCommits = Mutex<(groups: Int, commands: Int)>((0, 0))

    /// The scrape: gauges read from the database now, then everything rendered.
    public func render(
        runtime: ProjectionRuntime, pools: [(name: String, client: PostgresClient, maximum: Int)], limiter: RateLimiter?,
        groupCommits: (groups: Int, commands: Int)? = nil, slug: @Sendable (TenantID) async -> String?
    ) async -> [UInt8] {
        if let groupCommits {
            // Commands per commit: their ratio is how many requests one fsync answers.
            let (groups, commands) = reportedGroupCommits.withLock { reported in
                defer { reported = groupCommits }
                return (groupCommits.groups - reported.groups, groupCommits.commands - reported.commands)
            }
            registry.makeCounter(name: "command_group_commits_total").increment(by: Int64(groups))
            registry.makeCounter(name: "command_group_commands_total").increment(by: Int64(commands))
        }
        if let usage = limiter?.storeUsage {
            let (statements, takes) = reportedStoreUsage.withLock { reported in
                defer { reported = usage }
                return (usage.statements - reported.statements, usage.takes - reported.takes)
            }
            registry.makeCounter(name: "rate_limit_store_statements_total").increment(by: Int64(statements))
            registry.makeCounter(name: "rate_limit_store_takes_total").increment(by: Int64(takes))
        }
        let appends = pendingAppends.withLock { pending in defer { pending = [:] }; return pending }
        for (tenant, types) in appends {
            let label = tenants.label(tenant, slug: tenants.known(tenant) ? nil : await slug(tenant))
            for (type, count) in types {
                registry.makeCounter(name: "events_appended_total", labels: [("tenant", label), ("type", type)]).increment(by: Int64(count))
            }
        }
        do {
            for status in try await runtime.status() {
                let labels = [("projection", status.name), ("version", status.version), ("state", status.state)]
                registry.makeGauge(name: "projection_position_events", labels: labels).set(Double(status.applied))
                registry.makeGauge(name: "projection_lag_events", labels: labels).set(Double(status.lag))
                registry.makeGauge(name: "projection_tenants_behind", labels: labels).set(Double(status.tenantsBehind))
            }
        } catch {
            logger.warning("metrics: projection status unavailable", metadata: ["error": "\(DatabaseURL.describe(error))"])
        }
        for pool in pools {
            registry.makeGauge(name: "db_pool_max_connections", labels: [("pool", pool.name)]).set(Double(pool.maximum))
            var counts = ["active": 0, "idle": 0, "idle in transaction": 0]
            do {
                let rows = try await pool.client.query("""
                    SELECT coalesce(state, 'unknown'), count(*)::int FROM pg_stat_activity
                     WHERE application_name = \(PoolName.applicationName(pool.name)) AND pid <> pg_backend_pid() GROUP BY 1
                    """, logger: logger)
                for try await (state, count) in rows.decode((String, Int).self) { counts[state] = count }
                // The connection asking is busy too.
                counts["active", default: 0] += 1
            } catch {
                logger.warning("metrics: pool usage unavailable", metadata: ["error": "\(DatabaseURL.describe(error))"])
            }
            for (state, count) in counts {
                registry.makeGauge(name: "db_pool_connections", labels: [("pool", pool.name), ("state", state)]).set(Double(count))
            }
        }
        return registry.emitToBuffer()
    }
}

/// Which tenants get a label of their own: the first `cap` seen, so a scrape of a deployment
/// with 10 000 tenants has at most `cap + 1` values per tenant-labelled series.
final class TenantLabels: Sendable {
    let cap: Int
    private let labels = Mutex<[TenantID: String]>([:])

    init(cap: Int) { self.cap = cap }

    func known(_ id: TenantID) -> Bool {
        labels.withLock { $0[id] != nil }
    }

    func label(_ id: TenantID, slug: String? = nil) -> String {
        labels.withLock { labels in
            if let known = labels[id] { return known }
            guard labels.count < cap else { return "other" }
            let label = slug ?? id.rawValue.uuidString.lowercased()
            labels[id] = label
            return label
        }
    }
}

extension Duration {
    /// The whole duration in nanoseconds, for log lines and histograms.
    public var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}
