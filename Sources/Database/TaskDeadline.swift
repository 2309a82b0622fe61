/// When whoever started the current task cancels it: a request's deadline, set by the responder
/// that enforces it. A wait in that task that ends on cancellation (a pooled connection's lease)
/// is already bounded by it, and needs no bound of its own when that one would come no sooner.
///
/// Tasks created inside inherit task-local values but not that cancellation, so the value names
/// the one task it holds for, and reads as nil anywhere else.
package enum TaskDeadline {
    struct Bound: Sendable {
        let task: Int
        let instant: ContinuousClock.Instant
    }

    @TaskLocal static var bound: Bound?

    /// Runs `operation` in the current task, which the caller promises to cancel at `instant`
    /// (as late as a `DeadlineTimer`'s resolution after it, as the bounds it stands in for).
    package static func withCancellation<Result>(
        at instant: ContinuousClock.Instant,
        isolation: isolated (any Actor)? = #isolation,
        _ operation: () async throws -> Result
    ) async rethrows -> Result {
        try await $bound.withValue(Bound(task: currentTask, instant: instant), operation: operation, isolation: isolation)
    }

    /// When the current task itself is cancelled by whoever started it, if that is promised.
    package static var current: ContinuousClock.Instant? {
        guard let bound, bound.task == currentTask else { return nil }
        return bound.instant
    }

    private static var currentTask: Int {
        withUnsafeCurrentTask { $0?.hashValue ?? 0 }
    }
}
