/// A business rule set in the decider shape: a command and the current state decide the events,
/// and the events alone rebuild the state.
///
/// `decide` must be deterministic (time and ids arrive on the command) so that it can be tested
/// without a clock, and `evolve` must be total so that any stored history can be replayed.
public protocol Decider {
    associatedtype State: Sendable
    associatedtype Command: Sendable
    associatedtype Event: Sendable

    /// The state of a stream with no events.
    static var initialState: State { get }

    /// The events that carrying out `command` on `state` produces; empty when it changes nothing.
    static func decide(_ command: Command, _ state: State) throws(DomainError) -> [Event]

    /// The state after `event`. Never fails: a recorded event is a fact.
    static func evolve(_ state: State, _ event: Event) -> State
}

extension Decider {
    /// The state that `events` build from `initialState`.
    public static func fold(_ events: some Sequence<Event>) -> State {
        fold(events, from: initialState)
    }

    /// The state that `events` build on top of `state`, for callers holding a snapshot.
    public static func fold(_ events: some Sequence<Event>, from state: State) -> State {
        events.reduce(state) { evolve($0, $1) }
    }
}
