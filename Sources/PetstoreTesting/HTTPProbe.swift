import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A minimal HTTP/1.1 GET over a socket, for tests that poll a server in another process.
public enum HTTPProbe {
    /// A blocking TCP socket connected to 127.0.0.1:port, whose reads give up after
    /// `receiveTimeout` (so a caller can poll); nil when nothing listens. The caller closes it.
    public static func connectSocket(port: Int, receiveTimeout: Duration) -> Int32? {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { return nil }
        let microseconds = receiveTimeout.components.seconds * 1_000_000 + receiveTimeout.components.attoseconds / 1_000_000_000_000
        var timeout = timeval(tv_sec: Int(microseconds / 1_000_000), tv_usec: Int(microseconds % 1_000_000))
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
        guard connected else {
            close(descriptor)
            return nil
        }
        return descriptor
    }

    /// Polls `GET /health/ready` until it answers 200, the process has gone (`exited`), or a
    /// minute has passed; returns the last status seen.
    public static func waitUntilReady(port: Int, exited: () -> Bool) async -> Int {
        var status = 0
        for _ in 0..<600 where status != 200 && !exited() {
            try? await Task.sleep(for: .milliseconds(100))
            status = await Self.status(port: port, path: "/health/ready")
        }
        return status
    }

    /// The status code of `GET path` on 127.0.0.1:port, or 0 when nothing answers.
    public static func status(port: Int, path: String) async -> Int {
        // On a thread of its own, like `exchange`: the read may block for two seconds.
        await withCheckedContinuation { continuation in
            Thread.detachNewThread { continuation.resume(returning: blockingStatus(port: port, path: path)) }
        }
    }

    static func blockingStatus(port: Int, path: String) -> Int {
        guard let descriptor = connectSocket(port: port, receiveTimeout: .seconds(2)) else { return 0 }
        defer { close(descriptor) }
        let request = "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        _ = request.withCString { send(descriptor, $0, strlen($0), 0) }
        var buffer = [UInt8](repeating: 0, count: 64)
        let count = recv(descriptor, &buffer, buffer.count, 0)
        guard count > 12 else { return 0 }
        let line = String(decoding: buffer[0..<count], as: UTF8.self)
        let parts = line.split(separator: " ")
        return parts.count > 1 ? Int(parts[1]) ?? 0 : 0
    }

    /// What one exchange over a raw keep-alive connection brought back within `timeout`.
    public struct Exchange: Sendable {
        public let status: Int
        /// Header names lowercased; a repeated header keeps every value.
        public let headers: [(name: String, value: String)]
        public let body: [UInt8]
        /// False when the connection went quiet (or closed) before `Content-Length` bytes came.
        public let complete: Bool

        public func header(_ name: String) -> [String] { headers.filter { $0.name == name.lowercased() }.map(\.value) }
    }

    /// Sends `request` (a whole HTTP/1.1 message) and reads the answer byte by byte as a strict
    /// client would: the head, then as many body bytes as `Content-Length` says, waiting at most
    /// `timeout`. A framing error shows as an incomplete exchange instead of a hung test.
    ///
    /// The socket calls block, so they run on a thread of their own: blocking the few threads of
    /// Swift's cooperative pool would starve the very server under test.
    public static func exchange(port: Int, request: [UInt8], timeout: Duration = .seconds(30)) async -> Exchange? {
        await withCheckedContinuation { continuation in
            Thread.detachNewThread {
                continuation.resume(returning: blockingExchange(port: port, request: request, timeout: timeout))
            }
        }
    }

    static func blockingExchange(port: Int, request: [UInt8], timeout: Duration) -> Exchange? {
        guard let descriptor = connectSocket(port: port, receiveTimeout: .milliseconds(100)) else { return nil }
        defer { close(descriptor) }
        _ = request.withUnsafeBytes { send(descriptor, $0.baseAddress, $0.count, 0) }

        let deadline = ContinuousClock.now + timeout
        var received: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        var headEnd: Int?
        var expected: Int?
        var status = 0
        var headers: [(name: String, value: String)] = []
        while ContinuousClock.now < deadline {
            let count = recv(descriptor, &chunk, chunk.count, 0)
            if count == 0 { break }
            if count > 0 { received += chunk[0..<count] }
            if headEnd == nil, let end = received.indices.dropLast(3).first(where: { received[$0..<$0 + 4] == [13, 10, 13, 10] }) {
                headEnd = end + 4
                let lines = String(decoding: received[0..<end], as: UTF8.self).components(separatedBy: "\r\n")
                status = lines.first.flatMap { Int($0.split(separator: " ").dropFirst().first ?? "") } ?? 0
                for line in lines.dropFirst() {
                    guard let colon = line.firstIndex(of: ":") else { continue }
                    headers.append((line[..<colon].lowercased(), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)))
                }
                expected = headers.first(where: { $0.name == "content-length" }).flatMap { Int($0.value) } ?? 0
            }
            if let headEnd, let expected, received.count - headEnd >= expected { break }
        }
        guard let headEnd else { return Exchange(status: 0, headers: [], body: received, complete: false) }
        let body = Array(received[headEnd...])
        return Exchange(status: status, headers: headers, body: body, complete: body.count == (expected ?? 0))
    }
}
