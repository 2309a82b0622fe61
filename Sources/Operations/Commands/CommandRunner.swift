import Database
import Domain
import EventLog
import Foundation
import Logging
import Tenancy

/// Runs a decider command against one stream of a tenant, in one unit of work: read the stream,
/// fold, decide, append with the version read as the expected version, then whatever must
/// commit with it. A concurrent writer makes the append fail with a conflict; the command is
/// then decided again on the newer state, a few times at most.
public struct CommandRunner<D: Decider>: Sendable where D.State: Sendable, D.Event: Sendable {
    let streamType: String
    let encode: @Sendable (D.Event) throws(EventLogError) -> NewEvent
    let decode: @Sendable (RecordedEvent) throws(EventLogError) -> D.Event
    let logger: Logger

    public struct Outcome: Sendable {
        public let state: D.State
        public let events: [D.Event]
        /// The stream's version after the command (unchanged when it decided nothing).
        public let version: Int
        public let append: AppendResult?
    }

    /// The stream's current state and version (or as it was at `until`).
    public func load(_ handle: TenantHandle, id: UUID, until: Date? = nil) async throws -> (D.State, Int) {
        try await handle.readTenant { session in try await load(id: id, until: until, from: handle.store, in: session) }
    }

    func load(id: UUID, until: Date? = nil, from store: EventStore, in session: TenantSession) async throws -> (D.State, Int) {
        let stream = try StreamName(type: streamType, id: id)
        let recorded = try await store.read(stream: stream, until: until, in: session)
        let events = try recorded.map { event throws(EventLogError) in try decode(event) }
        return (D.fold(events), recorded.last?.streamVersion ?? 0)
    }

    /// Decides and appends. `expected`, when given, is the version the client saw (If-Match);
    /// then a mismatch is a conflict for the client rather than a retry.
    /// `alongside` runs in the same unit of work as the append.
    /// `assumeNew`: decide first against the initial state without reading the stream (a new
    /// id, as on create); the append's `.noStream` check catches an existing stream, and the
    /// command is then decided again on what is really there.
    public func run(
        _ handle: TenantHandle, id: UUID, metadata: EventMetadata, expected clientVersion: Int? = nil, assumeNew: Bool = false,
        alongside: (@Sendable (TenantSession) async throws -> Void)? = nil,
        _ command: @Sendable (D.State) -> D.Command
    ) async throws -> Outcome {
        let stream = try StreamName(type: streamType, id: id)
        var attempt = 0
        while true {
            attempt += 1
            let first = attempt == 1
            do {
                return try await handle.withTenant { session in
                    let (state, version) = assumeNew && first ? (D.initialState, 0) : try await load(id: id, from: handle.store, in: session)
                    if let clientVersion, clientVersion != version {
                        throw EventLogError(.wrongExpectedVersion, "the resource is at version \(version), not \(clientVersion)", actualVersion: version)
                    }
                    let events = try D.decide(command(state), state)
                    guard !events.isEmpty else {
                        return Outcome(state: state, events: [], version: version, append: nil)
                    }
                    let newEvents = try events.map { event throws(EventLogError) in try encode(event) }
                    let result = try await handle.store.append(
                        [StreamAppend(stream: stream, expected: version == 0 ? .noStream : .exact(version), events: newEvents)],
                        metadata: metadata, in: session)
                    try await alongside?(session)
                    return Outcome(state: D.fold(events, from: state), events: events, version: result.streamVersions[0], append: result)
                }
            } catch let error as EventLogError where error.code == .wrongExpectedVersion && clientVersion == nil && attempt < 3 {
                continue
            }
        }
    }
}
