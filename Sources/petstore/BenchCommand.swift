import ArgumentParser
import Database
import EventLog
import Foundation
import Logging
import PostgresNIO
import Synchronization

/// Load drivers for the scripts in bench/. Each prints one line of JSON with its measurement.
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Drive load for the bench/ scripts (build with -c release for meaningful numbers).",
        subcommands: [Append.self]
    )

    struct Append: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Append through EventStore.append for a fixed time and print appends per second."
        )

        @Option(name: .customLong("app-database-url"), help: "The application role's URL.")
        var url: String

        @Option(help: "Tenants to spread appends over; tenant k is 00000000-0000-4000-8000-<k, 12 digits>.")
        var tenants = 1

        @Option(help: "Events per append.")
        var batch = 1

        @Option(help: "Concurrent appenders (one connection each).")
        var concurrency = 1

        @Option(help: "Seconds to measure, after one second of warm-up.")
        var seconds = 8

        func run() async throws {
            var logger = Logger(label: "bench")
            logger.logLevel = .error
            let database = try DatabaseURL(url)
            let client = PostgresClient(configuration: database.clientConfiguration(maximumConnections: concurrency), backgroundLogger: logger)
            let tenantIDs = (1...tenants).map { TenantID(UUID(uuidString: String(format: "00000000-0000-4000-8000-%012d", $0))!) }
            let events = (0..<batch).map { NewEvent(type: "PetRegistered", data: .object(["name": .string("Rex \($0)"), "species": .string("dog")])) }
            let store = EventStore(client: client, logger: logger)
            let meter = Meter()
            let (concurrency, seconds) = (concurrency, seconds)

            // Appenders stop on a flag, not on cancellation, so that every append finishes while
            // the pool still runs; the pool is cancelled last.
            let elapsed = try await withThrowingTaskGroup(of: Void.self) { poolGroup in
                poolGroup.addTask { await client.run() }
                defer { poolGroup.cancelAll() }
                return try await withThrowingTaskGroup(of: Void.self) { group in
                    for _ in 0..<concurrency {
                        group.addTask {
                            while !meter.stopped.load(ordering: .relaxed) {
                                let tenant = tenantIDs.randomElement()!
                                try await store.append(tenant: tenant, stream: try StreamName(type: "pet", id: UUID()), expected: .any, events: events)
                                if meter.measuring.load(ordering: .relaxed) { meter.count.add(1, ordering: .relaxed) }
                            }
                        }
                    }
                    try await Task.sleep(for: .seconds(1))
                    meter.measuring.store(true, ordering: .relaxed)
                    let start = ContinuousClock.now
                    try await Task.sleep(for: .seconds(seconds))
                    meter.measuring.store(false, ordering: .relaxed)
                    let elapsed = ContinuousClock.now - start
                    meter.stopped.store(true, ordering: .relaxed)
                    try await group.waitForAll()
                    return elapsed
                }
            }
            let transactions = Double(meter.count.load(ordering: .relaxed))
            let secondsElapsed = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            let tps = transactions / secondsElapsed
            print(#"{"tps": \#(String(format: "%.1f", tps)), "events_per_second": \#(String(format: "%.1f", tps * Double(batch)))}"#)
        }
    }
}

/// Counts completed operations while a measurement window is open.
final class Meter: Sendable {
    let count = Atomic<Int>(0)
    let measuring = Atomic<Bool>(false)
    let stopped = Atomic<Bool>(false)
}
