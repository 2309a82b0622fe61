import Database
import Foundation
import Hummingbird
import Synchronization

/// Bounds how long a request may take to its response head, whatever the database does.
///
/// The request runs in a task of its own; when the deadline passes first, that task is cancelled
/// (a wait for a pooled connection ends at once) and the client gets 503 problem+json with
/// `Retry-After` straight away, even if a statement on the wire has not answered yet. A command
/// cut off this way may still commit: the answer says the outcome is unknown, and a retry with
/// the same `Idempotency-Key` gets the first answer if it did.
///
/// It wraps the whole responder rather than sitting in the router: a middleware's `next` may
/// not outlive the middleware, and answering on time means not waiting for it.
public struct DeadlineResponder<Inner: HTTPResponder>: HTTPResponder where Inner.Context == AppRequestContext {
    public typealias Context = AppRequestContext

    let timeout: Duration
    let inner: Inner
    let timer: DeadlineTimer

    public init(timeout: Duration, inner: Inner) {
        self.timeout = timeout
        self.inner = inner
        self.timer = DeadlineTimer(resolution: min(.milliseconds(50), timeout / 10))
    }

    public func respond(to request: Request, context: Context) async throws -> Response {
        let race = Race()
        let (inner, timeout, timer) = (self.inner, self.timeout, self.timer)
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                race.waiting.withLock { $0 = continuation }
                let due = ContinuousClock.now + timeout
                let handler = Task {
                    let result: Result<Response, any Error>
                    do {
                        result = .success(try await TaskDeadline.withCancellation(at: due) {
                            try await inner.respond(to: request, context: context)
                        })
                    } catch {
                        result = .failure(error)
                    }
                    if let continuation = race.waiting.withLock({ $0.take() }) {
                        race.timer.withLock { $0 }.map(timer.cancel)
                        continuation.resume(with: result)
                    }
                }
                race.work.withLock { $0 = handler }
                let deadline = timer.schedule(at: due) {
                    guard let continuation = race.waiting.withLock({ $0.take() }) else { return }
                    handler.cancel()
                    context.logger.warning("request cut off at its deadline", metadata: [
                        "method": "\(request.method)", "path": "\(request.uri.path)", "timeout": "\(timeout)",
                    ])
                    do {
                        var response = try Problem.deadlineExceeded(timeout).response(from: request, context: context)
                        let offered = request.headers[.requestID].flatMap { RequestIDMiddleware.isAcceptable($0) ? $0 : nil }
                        response.headers[.requestID] = offered ?? UUID.random().uuidString.lowercased()
                        continuation.resume(returning: response)
                    } catch {
                        continuation.resume(throwing: error)
                    }
                }
                race.timer.withLock { $0 = deadline }
                // The handler may have finished before the deadline was stored.
                if race.waiting.withLock({ $0 == nil }) { timer.cancel(deadline) }
            }
        } onCancel: {
            race.work.withLock { $0 }?.cancel()
        }
    }
}

/// The handler, the timer and the caller's continuation, shared by the tasks that race.
private final class Race: Sendable {
    let waiting = Mutex<CheckedContinuation<Response, any Error>?>(nil)
    let work = Mutex<Task<Void, Never>?>(nil)
    let timer = Mutex<UInt64?>(nil)
}

extension Problem {
    static func deadlineExceeded(_ timeout: Duration) -> Problem {
        Problem(type: typeBase + "service-unavailable", title: "Service Unavailable", status: .serviceUnavailable,
                detail: "The request did not complete within \(timeout.components.seconds) s. A command may or may not have taken effect: retry it with the same Idempotency-Key.",
                headers: [.retryAfter: "1"])
    }
}
