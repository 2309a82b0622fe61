import Dispatch
import Foundation
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// The last resort of a shutdown: once SIGTERM or SIGINT has arrived, the process ends by
/// `deadline` even if some work ignores cancellation (a socket to a database that stopped
/// answering). It stops the private cluster first, as a clean shutdown would.
final class ShutdownWatchdog: @unchecked Sendable {
    private let deadline: Duration
    private let cluster: DatabaseTarget
    private let logger: Logger
    private var sources: [any DispatchSourceSignal] = []

    init(deadline: Duration, cluster: DatabaseTarget, logger: Logger) {
        self.deadline = deadline
        self.cluster = cluster
        self.logger = logger
    }

    /// Watches the signals next to the service group's own handlers of them.
    func arm() {
        for signalNumber in [SIGTERM, SIGINT] {
            let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: .global())
            source.setEventHandler { [self] in
                sources.forEach { $0.cancel() }
                let seconds = Double(deadline.components.seconds) + Double(deadline.components.attoseconds) / 1e18
                DispatchQueue.global().asyncAfter(deadline: .now() + seconds) { [self] in
                    logger.critical("shutdown did not finish within \(deadline); exiting")
                    cluster.stopClusterIfOurs()
                    exit(1)
                }
            }
            source.resume()
            sources.append(source)
        }
    }
}
