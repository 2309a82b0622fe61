import Dispatch
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
#if canImport(Glibc)
import Glibc
#endif

/// HTTP/1.1 as Hummingbird serves it, with a deadline on each request's head.
///
/// Hummingbird's idle timeout closes a connection that delivers no complete request head for a
/// while, whatever bytes trickle in; this adds the shorter deadline that starts at a request's
/// first byte, so a client that sends half a header and stalls is cut off in seconds, not after
/// the keep-alive idle time.
struct GuardedHTTP1Channel: ServerChildChannel {
    typealias Value = HTTP1Channel.Value

    let inner: HTTP1Channel
    let headerTimeout: TimeAmount

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        do {
            try channel.pipeline.syncOperations.addHandler(RequestHeadDeadline(timeout: headerTimeout), position: .first)
        } catch {
            return channel.eventLoop.makeFailedFuture(error)
        }
        return inner.setup(channel: channel, logger: logger)
    }

    func handle(value: Value, logger: Logger) async {
        await inner.handle(value: value, logger: logger)
    }
}

extension HTTPServerBuilder {
    static func guardedHTTP1(headerTimeout: Duration, idleTimeout: Duration) -> HTTPServerBuilder {
        .init { responder in
            GuardedHTTP1Channel(
                inner: HTTP1Channel(responder: responder, configuration: .petstore(idleTimeout: TimeAmount(idleTimeout))),
                headerTimeout: TimeAmount(headerTimeout)
            )
        }
    }
}

/// Watches the raw bytes: the first byte of a request starts the clock, the blank line that ends
/// its head stops it. A request starts at the first byte read after a response began to go out.
final class RequestHeadDeadline: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = IOData
    typealias OutboundOut = IOData

    enum State {
        case waiting
        case readingHead(matched: Int)
        case afterHead(responding: Bool)
    }

    private let timeout: TimeAmount
    private var state = State.waiting
    private var deadline: Scheduled<Void>?

    init(timeout: TimeAmount) {
        self.timeout = timeout
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        switch state {
        case .waiting, .afterHead(responding: true):
            let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
            deadline = context.eventLoop.scheduleTask(in: timeout) { loopBound.value.close(promise: nil) }
            scan(buffer, from: 0)
        case .readingHead(let matched):
            scan(buffer, from: matched)
        case .afterHead(responding: false):
            break
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .afterHead(responding: false) = state { state = .afterHead(responding: true) }
        context.write(data, promise: promise)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        deadline?.cancel()
    }

    func channelInactive(context: ChannelHandlerContext) {
        deadline?.cancel()
        context.fireChannelInactive()
    }

    /// Looks for CR LF CR LF, carrying over how much of it the previous read ended with.
    private func scan(_ buffer: ByteBuffer, from matched: Int) {
        let pattern: [UInt8] = [13, 10, 13, 10]
        var matched = matched
        for byte in buffer.readableBytesView {
            if byte == pattern[matched] {
                matched += 1
                if matched == pattern.count {
                    deadline?.cancel()
                    deadline = nil
                    state = .afterHead(responding: false)
                    return
                }
            } else {
                matched = byte == 13 ? 1 : 0
            }
        }
        state = .readingHead(matched: matched)
    }
}

/// The connection cap, and memory handed back once many connections have gone.
///
/// glibc keeps what a burst of connections freed in its arenas; after a flood of idle or
/// slow connections is cut off, `malloc_trim` gives it back to the system instead of leaving
/// the process at its high-water mark.
struct CappedConnections: AvailableConnectionsDelegate {
    let maximum: Int
    let logger: Logger
    private var open = 0
    private var closedSinceTrim = 0

    init(maximum: Int, logger: Logger) {
        self.maximum = maximum
        self.logger = logger
    }

    mutating func connectionOpened() {
        open += 1
    }

    mutating func connectionClosed() {
        open -= 1
        closedSinceTrim += 1
        // Trim after a burst has drained, not on every close: a trim walks the whole heap.
        if closedSinceTrim >= 256 && open < closedSinceTrim / 4 {
            closedSinceTrim = 0
            DispatchQueue.global(qos: .utility).asyncAfter(deadline: .now() + 1) {
                _ = Self.mallocTrim?(0)
            }
        }
    }

    func isAcceptingNewConnections() -> Bool {
        open < maximum
    }

    /// glibc's `malloc_trim`, which Swift's Glibc module does not import; nil elsewhere.
    private typealias MallocTrim = @convention(c) (Int) -> Int32
    private static let mallocTrim: MallocTrim? = {
        guard let symbol = dlsym(nil, "malloc_trim") else { return nil }
        return unsafeBitCast(symbol, to: MallocTrim.self)
    }()
}
