import Database
import Hummingbird
import NIOCore
import Operations

/// What a command route answers, and what a replay of it answers when that differs: a secret
/// shown once (an issued API key) is recorded without it.
struct Reply {
    let response: Response
    let replayBody: ByteBuffer?

    init(_ response: Response, replayBody: ByteBuffer? = nil) {
        self.response = response
        self.replayBody = replayBody
    }
}

/// Runs a command route's work through the command pipeline (unit of work, `Idempotency-Key`,
/// response recorded with the events) and answers what it answered, or its replay.
struct CommandResponder: Sendable {
    let pipeline: CommandPipeline

    /// For a tenant route: `work` runs in the tenant's unit of work, which records the response.
    func respond(_ context: TenantRequestContext, _ work: (TenantSession) async throws -> Reply) async throws -> Response {
        try answer(try await pipeline.run(in: context.tenant.id, key: context.idempotencyKey) { session in try await Self.recorded(work(session)) })
    }

    /// For a platform route: `work` writes to the tenant it acts on in units of work of its own;
    /// a key is held and its response recorded beside them.
    func respond(_ context: PlatformRequestContext, _ work: () async throws -> Reply) async throws -> Response {
        try answer(try await pipeline.run(beside: CommandPipeline.platformScope, key: context.idempotencyKey) { try await Self.recorded(work()) })
    }

    static func recorded(_ reply: Reply) async throws -> CommandPipeline.Reply {
        let shown = try await StoredResponse(reply.response)
        let kept = reply.replayBody.map { StoredResponse(status: shown.status, headers: shown.headers, body: $0) } ?? shown
        return CommandPipeline.Reply(response: shown.recorded, recorded: kept.recorded)
    }

    func answer(_ outcome: (response: CommandPipeline.Recorded, replayed: Bool)) throws -> Response {
        let recorded = outcome.response
        var response = try StoredResponse(status: recorded.status, headersJSON: recorded.headersJSON, body: recorded.body).response()
        if outcome.replayed { response.headers[.idempotentReplayed] = "true" }
        return response
    }
}

extension StoredResponse {
    var recorded: CommandPipeline.Recorded {
        CommandPipeline.Recorded(status: status, headersJSON: headersJSON, body: body)
    }
}
