import Database
import Foundation
import PetstoreTesting
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Clients that connect and then send nothing, half a head, or a byte at a time.
@Suite(.serialized) struct SlowClientTests {
    /// A raw client socket; the blocking calls run on threads of their own.
    final class RawConnection: @unchecked Sendable {
        let descriptor: Int32

        init?(port: Int) {
            guard let descriptor = HTTPProbe.connectSocket(port: port, receiveTimeout: .milliseconds(50)) else { return nil }
            self.descriptor = descriptor
        }

        deinit { close(descriptor) }

        func send(_ text: String) {
            _ = text.withCString { Glibc.send(descriptor, $0, strlen($0), Int32(MSG_NOSIGNAL)) }
        }

        /// Seconds until the server closed the connection (or `limit` if it did not), with
        /// whatever it sent before.
        func secondsUntilClosed(limit: Duration, drip: String? = nil) async -> (seconds: Double, received: String) {
            await withCheckedContinuation { continuation in
                Thread.detachNewThread {
                    let start = ContinuousClock.now
                    var received: [UInt8] = []
                    var buffer = [UInt8](repeating: 0, count: 4096)
                    var lastDrip = start
                    while ContinuousClock.now - start < limit {
                        if let drip, ContinuousClock.now - lastDrip > .milliseconds(300) {
                            self.send(drip)
                            lastDrip = .now
                        }
                        let count = recv(self.descriptor, &buffer, buffer.count, 0)
                        if count == 0 || (count < 0 && errno != EAGAIN && errno != EWOULDBLOCK) { break }
                        if count > 0 { received += buffer[0..<count] }
                    }
                    let elapsed = ContinuousClock.now - start
                    let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
                    continuation.resume(returning: (seconds, String(decoding: received, as: UTF8.self)))
                }
            }
        }
    }

    @Test func `silent, half-sent and dripping clients are cut off; keep-alive works; connections are capped`() async throws {
        let database = try await TestCluster.shared.database()
        var environment = ProcessInfo.processInfo.environment
        environment["DATABASE_URL"] = database.ownerURL.connectionString
        environment["APP_DATABASE_URL"] = database.appURL.connectionString
        let directory = FileManager.default.temporaryDirectory.appending(path: "petstore-slow-\(UUID().uuidString.prefix(8))")
        defer { try? FileManager.default.removeItem(at: directory) }
        let port = try LocalCluster.freePort()
        let server = try ChildProcess.spawn(
            [ServeCommandTests.binary, "serve", "--port", "\(port)", "--host", "127.0.0.1", "--data-dir", directory.path,
             "--header-timeout", "1s", "--idle-timeout", "4s", "--max-connections", "8", "--log-level", "warning"],
            environment: environment)
        defer {
            server.signal(SIGKILL)
            server.waitBlocking()
        }
        let ready = await HTTPProbe.waitUntilReady(port: port) { server.exitStatus() != nil }
        try #require(ready == 200, "not ready: \(server.output)")

        // Each in a task of its own: they run side by side, so the idle one does not hold up the rest.
        async let silent: (Double, String) = {
            let connection = RawConnection(port: port)!
            return await connection.secondsUntilClosed(limit: .seconds(15))
        }()
        async let halfHead: (Double, String) = {
            let connection = RawConnection(port: port)!
            connection.send("GET /health/live HTTP/1.1\r\nHost: localhost\r\n")
            return await connection.secondsUntilClosed(limit: .seconds(15))
        }()
        async let dripping: (Double, String) = {
            let connection = RawConnection(port: port)!
            connection.send("GET /health/live HTTP/1.1\r\n")
            return await connection.secondsUntilClosed(limit: .seconds(15), drip: "X-Slow: 1\r\n")
        }()
        async let keptAlive: (Double, String) = {
            let connection = RawConnection(port: port)!
            connection.send("GET /health/live HTTP/1.1\r\nHost: localhost\r\n\r\n")
            try? await Task.sleep(for: .seconds(2))
            // Past the header timeout but within the idle one: a second request is still welcome.
            connection.send("GET /health/live HTTP/1.1\r\nHost: localhost\r\n\r\n")
            return await connection.secondsUntilClosed(limit: .seconds(15))
        }()
        let (silentResult, halfResult, dripResult, keptResult) = await (silent, halfHead, dripping, keptAlive)

        #expect(silentResult.0 > 2 && silentResult.0 < 8, "a silent connection closes at the idle timeout (4 s): \(silentResult.0) s")
        #expect(halfResult.0 < 3, "half a head closes at the header timeout (1 s): \(halfResult.0) s")
        #expect(dripResult.0 < 3, "a head sent a line at a time closes at the header timeout: \(dripResult.0) s")
        #expect(keptResult.1.components(separatedBy: "HTTP/1.1 200").count - 1 == 2, "both keep-alive requests answered: \(keptResult.1)")
        #expect(keptResult.0 > 2 && keptResult.0 < 8, "then it closes at the idle timeout: \(keptResult.0) s")

        // The cap: 8 connections held open; a ninth waits in the backlog until one goes.
        var held = (0..<8).compactMap { _ in RawConnection(port: port) }
        #expect(held.count == 8)
        for connection in held { connection.send("GET /health/live HTTP/1.1\r\nHost: localhost\r\n\r\n") }
        try await Task.sleep(for: .milliseconds(500))
        let ninth = try #require(RawConnection(port: port))
        ninth.send("GET /health/live HTTP/1.1\r\nHost: localhost\r\n\r\n")
        let waiting = await ninth.secondsUntilClosed(limit: .milliseconds(1500))
        #expect(!waiting.1.contains("200"), "over the cap a connection is not served: \(waiting.1)")
        held.removeAll()
        let served = await ninth.secondsUntilClosed(limit: .seconds(3))
        #expect(served.1.contains("HTTP/1.1 200"), "once one goes it is served: \(served.1)")
        #expect(server.exitStatus() == nil)
    }
}
