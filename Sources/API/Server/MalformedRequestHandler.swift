import HTTPTypes
import HummingbirdCore
import NIOCore
import NIOHTTP1
import NIOHTTPTypes

/// Answers a request the HTTP/1 parser rejects (a bad request line or header, headers over the
/// limit, a broken chunk) with a problem+json body and closes the connection.
///
/// Such a request never reaches the router: Hummingbird's own answer is an empty 400. This
/// handler sits in the pipeline after the HTTP codec (`HTTP1Channel`'s additional handlers) and
/// sees the parser's error first. It answers only when no response is under way on the
/// connection, so it never interleaves with one; otherwise the error goes on to Hummingbird,
/// which answers as before.
final class MalformedRequestHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    /// Requests whose head arrived and whose response has not ended.
    private var pending = 0

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head = unwrapInboundIn(data) { pending += 1 }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data) { pending -= 1 }
        context.write(data, promise: promise)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let parserError = error as? HTTPParserError, pending == 0 else {
            context.fireErrorCaught(error)
            return
        }
        let problem = Self.problem(for: parserError)
        let body = problem.body
        var fields = problem.headers
        fields[.contentType] = "application/problem+json"
        fields[.contentLength] = String(body.readableBytes)
        fields[.connection] = "close"
        pending = 1
        context.write(wrapOutboundOut(.head(HTTPResponse(status: problem.status, headerFields: fields))), promise: nil)
        context.write(wrapOutboundOut(.body(body)), promise: nil)
        let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in bound.value.close(promise: nil) }
    }

    static func problem(for error: HTTPParserError) -> Problem {
        if case .headerOverflow = error {
            return Problem(type: Problem.typeBase + "request-header-fields-too-large", title: "Request Header Fields Too Large",
                           status: .requestHeaderFieldsTooLarge, detail: "The request's headers are larger than the server accepts.")
        }
        return Problem(type: Problem.typeBase + "malformed-request", title: "Bad Request", status: .badRequest,
                       detail: "The request is not well-formed HTTP/1.1 (\(error)).")
    }
}

extension HTTP1Channel.Configuration {
    /// Hummingbird's HTTP/1.1 channel with malformed requests answered in problem+json.
    static func petstore(idleTimeout: TimeAmount? = nil) -> Self {
        .init(additionalChannelHandlers: [MalformedRequestHandler()], idleTimeout: idleTimeout)
    }
}
