/// What `petstore serve` needs besides the database.
public struct ServerConfiguration: Sendable {
    public var host: String
    public var port: Int
    /// How long `/health/ready` waits for the database before answering 503.
    public var readinessTimeout: Duration

    public init(host: String = "0.0.0.0", port: Int = 8080, readinessTimeout: Duration = .seconds(2)) {
        self.host = host
        self.port = port
        self.readinessTimeout = readinessTimeout
    }
}
