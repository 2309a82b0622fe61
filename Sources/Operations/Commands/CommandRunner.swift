import Database
import Domain
import EventLog
import Foundation
import Logging
import Tenancy

/// The one way a command changes a stream: inside the caller's unit of work, read the stream,
/// fold, decide, do the inline work that must commit with the events (the catalog rows of tenant
/// events, a provisioning step), and append with the version read as the expected version.
/// A concurrent writer makes the append answer a conflict; the command is then decided again
/// on the newer state, a few times at most.
public struct CommandRunner<D: Decider>: Sendable where D.State: Sendable, D.Event: Sendable {
    let streamType: String
    let encode: @Sendable (D.Event) throws(EventLogError) -> NewEvent
    let decode: @Sendable (RecordedEvent) throws(EventLogError) -> D.Event
    let store: EventStore
    /// What turns the events to append into what is stored (personal fields sealed), and the
    /// events read back into what decodes (opened): in the command's transaction.
    let seal: (@Sendable ([NewEvent], TenantSession) async throws -> [NewEvent])?
    let reveal: (@Sendable ([RecordedEvent], TenantSession) async throws -> [RecordedEvent])?

    public init(
        streamType: String, encode: @escaping @Sendable (D.Event) throws(EventLogError) -> NewEvent,
        decode: @escaping @Sendable (RecordedEvent) throws(EventLogError) -> D.Event, store: EventStore,
        seal: (@Sendable ([NewEvent], TenantSession) async throws -> [NewEvent])? = nil,
        reveal: (@Sendable ([RecordedEvent], TenantSession) async throws -> [RecordedEvent])? = nil
    ) {
        self.streamType = streamType
        self.encode = encode
        self.decode = decode
        self.store = store
        self.seal = seal
        self.reveal = reveal
    }

    public struct Outcome: Sendable {
        public let state: D.State
        public let events: [D.Event]
        /// The stream's version after the command (unchanged when it decided nothing).
        public let version: Int
        public let append: AppendResult?
        /// The events appended, as recorded (empty when nothing was).
        public let recorded: [RecordedEvent]
    }

    /// The stream's state and version in the session's tenant (or as it was at `until`).
    public func load(id: UUID, until: Date? = nil, in session: TenantSession) async throws -> (D.State, Int) {
        var recorded = try await store.read(stream: try StreamName(type: streamType, id: id), until: until, in: session)
        if let reveal { recorded = try await reveal(recorded, session) }
        let events = try recorded.map { event throws(EventLogError) in try decode(event) }
        return (D.fold(events), recorded.last?.streamVersion ?? 0)
    }

    /// Decides `command` and appends what it decided, in `session`.
    /// `expected`, when given, is the version the client saw (If-Match); then a mismatch is a
    /// conflict for the client rather than a retry.
    /// `assumeNew`: decide first against the initial state without reading the stream (a new
    /// id, as on create); the append's `.noStream` check catches an existing stream, and the
    /// command is then decided again on what is really there.
    public func run(
        id: UUID, metadata: EventMetadata, expected clientVersion: Int? = nil, assumeNew: Bool = false, in session: TenantSession,
        inline: ((_ events: [D.Event], TenantSession) async throws -> Void)? = nil,
        _ command: (D.State) -> D.Command
    ) async throws -> Outcome {
        try await run(id: id, metadata: metadata, expected: clientVersion, assumeNew: assumeNew, in: session, inline: inline) { state throws(DomainError) in
            try D.decide(command(state), state)
        }
    }

    /// As `run`, with the decision made by `decide` (several commands decided in a row, say).
    public func run(
        id: UUID, metadata: EventMetadata, expected clientVersion: Int? = nil, assumeNew: Bool = false, in session: TenantSession,
        inline: ((_ events: [D.Event], TenantSession) async throws -> Void)? = nil,
        decide: (D.State) throws(DomainError) -> [D.Event]
    ) async throws -> Outcome {
        let stream = try StreamName(type: streamType, id: id)
        // A conflict is decided again on the newer state. The append answers it without ending
        // the transaction, so only work done before the append (inline work, sealing personal
        // fields) needs a savepoint to be undone first: two round trips a command saves without.
        let undoable = inline != nil || seal != nil
        var attempt = 0
        while true {
            attempt += 1
            let first = attempt == 1
            func step(_ session: TenantSession) async throws -> Result<Outcome, EventLogError> {
                let (state, version) = assumeNew && first ? (D.initialState, 0) : try await load(id: id, in: session)
                if let clientVersion, clientVersion != version {
                    throw EventLogError(.wrongExpectedVersion, "the resource is at version \(version), not \(clientVersion)", actualVersion: version)
                }
                let events = try decide(state)
                guard !events.isEmpty else {
                    return .success(Outcome(state: state, events: [], version: version, append: nil, recorded: []))
                }
                var newEvents = try events.map { event throws(EventLogError) in try encode(event) }
                if let seal { newEvents = try await seal(newEvents, session) }
                // Inline work first: a tenant's own partition must exist before its first event
                // is appended, or the event would land in the shared ones.
                try await inline?(events, session)
                let appended = try await store.tryAppend(
                    [StreamAppend(stream: stream, expected: version == 0 ? .noStream : .exact(version), events: newEvents)],
                    metadata: metadata, in: session)
                switch appended {
                case .appended(let result, let recorded):
                    return .success(Outcome(state: D.fold(events, from: state), events: events, version: result.streamVersions[0],
                                            append: result, recorded: recorded))
                case .conflict(let conflict):
                    return .failure(conflict)
                }
            }
            let outcome: Result<Outcome, EventLogError>
            if undoable {
                do {
                    // Thrown out of the savepoint, so that it rolls back what came before the append.
                    outcome = .success(try await session.withSavepoint { session in try await step(session).get() })
                } catch let error as EventLogError where error.code == .wrongExpectedVersion {
                    outcome = .failure(error)
                }
            } else {
                outcome = try await step(session)
            }
            switch outcome {
            case .success(let done):
                return done
            case .failure where clientVersion == nil && attempt < 3:
                continue
            case .failure(let conflict):
                throw conflict
            }
        }
    }
}
