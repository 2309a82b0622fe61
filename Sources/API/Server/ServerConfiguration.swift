/// What `petstore serve` needs besides the database.
public struct ServerConfiguration: Sendable {
    public var host: String
    public var port: Int
    /// How long `/health/ready` waits for the database before answering 503.
    public var readinessTimeout: Duration
    /// Once a request's first byte arrives, how long its whole head (request line and headers)
    /// may take before the connection is closed: slow-header clients hold nothing for long.
    public var headerTimeout: Duration
    /// How long a connection may sit with no request in progress (before its first request, or
    /// between keep-alive requests) before it is closed.
    public var idleTimeout: Duration
    /// Most connections served at once; past it new ones wait in the listen backlog.
    public var maxConnections: Int
    /// How long a request may take to its response head; past it 503 with `Retry-After`.
    public var requestTimeout: Duration
    /// How long a request waits for its tenant's share of the request pool; past it 503.
    public var connectionWaitTimeout: Duration
    /// The part of the request pool one tenant's requests (or the platform's) may hold at once.
    public var tenantPoolShare: Double

    public init(
        host: String = "0.0.0.0", port: Int = 8080, readinessTimeout: Duration = .seconds(2),
        headerTimeout: Duration = .seconds(10), idleTimeout: Duration = .seconds(30), maxConnections: Int = 2048,
        requestTimeout: Duration = .seconds(5), connectionWaitTimeout: Duration = .seconds(2), tenantPoolShare: Double = 0.5
    ) {
        self.host = host
        self.port = port
        self.readinessTimeout = readinessTimeout
        self.headerTimeout = headerTimeout
        self.idleTimeout = idleTimeout
        self.maxConnections = maxConnections
        self.requestTimeout = requestTimeout
        self.connectionWaitTimeout = connectionWaitTimeout
        self.tenantPoolShare = tenantPoolShare
    }
}
