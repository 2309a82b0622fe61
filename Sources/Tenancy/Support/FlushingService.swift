import ServiceLifecycle

/// A service whose work piles up in memory off the request path and is written every
/// `interval`. Graceful shutdown cuts the wait short and writes what is left, so only a
/// process killed outright loses its last interval.
public protocol FlushingService: Service {
    var interval: Duration { get }
    /// Writes what is pending; what fails to write stays for the next call.
    func flush() async
}

extension FlushingService {
    public func run() async throws {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            let interval = self.interval
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
            await flush()
        }
        await flush()
    }
}
