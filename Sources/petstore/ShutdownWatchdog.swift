import Dispatch
import Foundation
import Logging
import ServiceLifecycle
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The last resort of a shutdown: once SIGTERM or SIGINT has arrived, the process ends by
/// `deadline` even if some work ignores cancellation (a socket to a database that stopped
/// answering). It stops the private cluster first, as a clean shutdown would. Along the way it
/// names the services that have not finished, so a slow shutdown says where it waits.
final class ShutdownWatchdog: @unchecked Sendable {
    private let deadline: Duration
    private let cluster: DatabaseTarget
    private let logger: Logger
    private let running = Mutex<[String: Int]>([:])
    private var sources: [any DispatchSourceSignal] = []

    init(deadline: Duration, cluster: DatabaseTarget, logger: Logger) {
        self.deadline = deadline
        self.cluster = cluster
        self.logger = logger
    }

    /// `service`, counted as running until its `run()` returns.
    func tracking(_ service: any Service, named name: String) -> any Service {
        TrackedService(service: service, name: name, watchdog: self)
    }

    fileprivate func started(_ name: String) { running.withLock { $0[name, default: 0] += 1 } }

    fileprivate func finished(_ name: String) {
        running.withLock { running in
            running[name, default: 1] -= 1
            if running[name] == 0 { running[name] = nil }
        }
    }

    private var unfinished: String { running.withLock { $0.keys.sorted().joined(separator: ", ") } }

    /// Watches the signals next to the service group's own handlers of them.
    func arm() {
        for signalNumber in [SIGTERM, SIGINT] {
            let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: .global())
            source.setEventHandler { [self] in
                sources.forEach { $0.cancel() }
                let seconds = Double(deadline.components.seconds) + Double(deadline.components.attoseconds) / 1e18
                DispatchQueue.global().asyncAfter(deadline: .now() + min(5, seconds / 2)) { [self] in
                    let waiting = unfinished
                    guard !waiting.isEmpty else { return }
                    logger.notice("shutdown is waiting for services to finish", metadata: ["services": "\(waiting)"])
                }
                DispatchQueue.global().asyncAfter(deadline: .now() + seconds) { [self] in
                    logger.critical("shutdown did not finish within \(deadline); exiting", metadata: ["services": "\(unfinished)"])
                    cluster.stopClusterIfOurs()
                    exit(1)
                }
            }
            source.resume()
            sources.append(source)
        }
    }
}

private struct TrackedService: Service {
    let service: any Service
    let name: String
    let watchdog: ShutdownWatchdog

    func run() async throws {
        watchdog.started(name)
        defer { watchdog.finished(name) }
        try await service.run()
    }
}
