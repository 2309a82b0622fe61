import Database
import Domain
import EventLog
import Foundation
import Logging
import PostgresNIO
import Tenancy

/// Runs a decider command against one stream of a tenant: read the stream, fold, decide, append
/// with the version read as the expected version. A concurrent writer makes the append fail with
/// a conflict; the command is then decided again on the newer state, a few times at most.
struct CommandRunner<D: Decider>: Sendable where D.State: Sendable, D.Event: Sendable {
    let streamType: String
    let encode: @Sendable (D.Event) throws(EventLogError) -> NewEvent
    let decode: @Sendable (RecordedEvent) throws(EventLogError) -> D.Event
    let logger: Logger

    struct Outcome: Sendable {
        let state: D.State
        let events: [D.Event]
        /// The stream's version after the command (unchanged when it decided nothing).
        let version: Int
        let append: AppendResult?
    }

    /// The stream's current state and version.
    func load(_ handle: TenantHandle, id: UUID, until: Date? = nil) async throws -> (D.State, Int) {
        let stream = try StreamName(type: streamType, id: id)
        let recorded = try await handle.store.read(tenant: handle.tenant.id, stream: stream, until: until)
        let events = try recorded.map { event throws(EventLogError) in try decode(event) }
        return (D.fold(events), recorded.last?.streamVersion ?? 0)
    }

    /// Decides and appends. `expected`, when given, is the version the client saw (If-Match);
    /// then a mismatch is a conflict for the client rather than a retry.
    /// `alongside` runs in the same transaction as the append.
    /// `assumeNew`: decide first against the initial state without reading the stream (a new
    /// id, as on create); the append's `.noStream` check catches an existing stream, and the
    /// command is then decided again on what is really there.
    func run(
        _ handle: TenantHandle, id: UUID, metadata: EventMetadata, expected clientVersion: Int? = nil, assumeNew: Bool = false,
        alongside: (@Sendable (PostgresConnection) async throws -> Void)? = nil,
        _ command: @Sendable (D.State) -> D.Command
    ) async throws -> Outcome {
        let stream = try StreamName(type: streamType, id: id)
        var attempt = 0
        while true {
            attempt += 1
            let (state, version) = assumeNew && attempt == 1 ? (D.initialState, 0) : try await load(handle, id: id)
            if let clientVersion, clientVersion != version {
                throw EventLogError(.wrongExpectedVersion, "the resource is at version \(version), not \(clientVersion)", actualVersion: version)
            }
            let events = try D.decide(command(state), state)
            guard !events.isEmpty else {
                return Outcome(state: state, events: [], version: version, append: nil)
            }
            let newEvents = try events.map { event throws(EventLogError) in try encode(event) }
            do {
                let result = try await handle.client.withCommandTransaction(tenant: handle.tenant.id.rawValue, logger: logger) { connection in
                    let result = try await handle.store.append(
                        tenant: handle.tenant.id,
                        [StreamAppend(stream: stream, expected: version == 0 ? .noStream : .exact(version), events: newEvents)],
                        metadata: metadata, on: connection)
                    try await alongside?(connection)
                    return result
                }
                handle.store.signal.appended(handle.tenant.id)
                return Outcome(state: D.fold(events, from: state), events: events, version: result.streamVersions[0], append: result)
            } catch {
                let mapped = (error as? PostgresTransactionError)?.closureError ?? error
                if let logError = mapped as? EventLogError, logError.code == .wrongExpectedVersion, clientVersion == nil, attempt < 3 {
                    continue
                }
                throw mapped
            }
        }
    }
}
