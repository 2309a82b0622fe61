import Database
import Foundation
import Logging
import PostgresNIO

/// Events to append to one stream, with the version the caller expects it at.
public struct StreamAppend: Sendable {
    public let stream: StreamName
    public let expected: ExpectedVersion
    public let events: [NewEvent]

    public init(stream: StreamName, expected: ExpectedVersion, events: [NewEvent]) {
        self.stream = stream
        self.expected = expected
        self.events = events
    }
}

/// Where an append landed.
public struct AppendResult: Sendable, Equatable {
    public let tenant: TenantID
    public let firstSeq: Int64
    public let lastSeq: Int64
    /// Each stream's version after the append, in the order the streams were given.
    public let streamVersions: [Int]
    public let headHash: [UInt8]
    public let recordedAt: String
}

/// The tenant-partitioned, hash-chained event log.
///
/// Appends to one tenant are serialized on that tenant's head row, which makes `seq` gap-free
/// and equal to commit order; appends to different tenants never wait on each other.
public struct EventStore: Sendable {
    /// The way into each tenant's log.
    public let database: TenantDatabase
    /// For the few control-plane reads that span tenants without showing their data.
    let client: PostgresClient
    public let signal: AppendSignal
    let logger: Logger
    /// Told what was appended once it is committed: tenant and event counts by type.
    public typealias AppendObserver = @Sendable (TenantID, [String: Int]) -> Void
    let observer: AppendObserver?

    /// `homeTTL`: how long where a tenant lives is remembered; `reads`: where reads wait their
    /// turn; `commitLanes`: how many groups of commands may commit side by side in a database
    /// (see `TenantDatabase`).
    public init(client: PostgresClient, signal: AppendSignal = AppendSignal(), observer: AppendObserver? = nil,
                homeTTL: Duration = .seconds(2), pools: HomePools? = nil, reads: ReadGate? = nil,
                commitLanes: Int = TenantDatabase.defaultCommitLanes, logger: Logger) {
        self.database = TenantDatabase(client: client, logger: logger, homeTTL: homeTTL, pools: pools, reads: reads, commitLanes: commitLanes)
        self.observer = observer
        self.client = client
        self.signal = signal
        self.logger = logger
    }

    // MARK: - Append

    /// Appends events to one stream in a unit of work of its own.
    @discardableResult
    public func append(
        tenant: TenantID, stream: StreamName, expected: ExpectedVersion, events: [NewEvent], metadata: EventMetadata = .init()
    ) async throws(EventLogError) -> AppendResult {
        try await append(tenant: tenant, [StreamAppend(stream: stream, expected: expected, events: events)], metadata: metadata)
    }

    /// Appends to several streams of one tenant atomically, in a unit of work of its own: one
    /// statement, one round trip.
    @discardableResult
    public func append(tenant: TenantID, _ appends: [StreamAppend], metadata: EventMetadata = .init()) async throws(EventLogError) -> AppendResult {
        let prepared = try PreparedAppend(tenant: tenant, appends: appends, metadata: metadata)
        let result: AppendResult
        do {
            result = try prepared.result(try await database.call(prepared.statement, as: tenant).first)
        } catch {
            throw Self.map(error)
        }
        signal.appended(tenant, through: result.lastSeq)
        observe(tenant, appends)
        return result
    }

    /// Appends inside the session's unit of work, so that the events commit together with
    /// whatever else it writes. Waiters are woken and observers told once it commits.
    @discardableResult
    public func append(_ appends: [StreamAppend], metadata: EventMetadata = .init(), in session: TenantSession) async throws(EventLogError) -> AppendResult {
        switch try await tryAppend(appends, metadata: metadata, in: session) {
        case .appended(let result, _): return result
        case .conflict(let conflict): throw conflict
        }
    }

    /// `append`, for a caller that decides again on a conflict: a stream not at its expected
    /// version comes back as `.conflict`, with nothing written and the session's transaction
    /// still usable, so no savepoint is needed around the append. What was appended comes back
    /// with its events as recorded, for a projection in the same transaction to apply without
    /// reading them back.
    public func tryAppend(_ appends: [StreamAppend], metadata: EventMetadata = .init(), in session: TenantSession) async throws(EventLogError) -> AppendAttempt {
        let prepared = try PreparedAppend(tenant: session.tenant, appends: appends, metadata: metadata)
        let attempt: AppendAttempt
        do {
            attempt = try await prepared.runChecked(in: session)
        } catch {
            throw Self.map(error)
        }
        if case .appended(let result, _) = attempt {
            session.noteAppend(through: result.lastSeq)
            let tenant = session.tenant
            session.afterCommit { [self] in
                signal.appended(tenant, through: result.lastSeq)
                observe(tenant, appends)
            }
        }
        return attempt
    }

    private func observe(_ tenant: TenantID, _ appends: [StreamAppend]) {
        guard let observer else { return }
        var types: [String: Int] = [:]
        for append in appends { for event in append.events { types[event.type, default: 0] += 1 } }
        observer(tenant, types)
    }

    static func map(_ error: any Error) -> EventLogError {
        if let error = error as? EventLogError { return error }
        if let error = error as? PostgresTransactionError {
            if let inner = error.closureError { return map(inner) }
        }
        if let error = error as? PSQLError, let state = error.serverInfo?[.sqlState] {
            if let conflict = PreparedAppend.conflict(from: error) { return conflict }
            if state == "23505" {
                return EventLogError(.wrongExpectedVersion, "a concurrent append reached the stream first")
            }
            if state == "22P02" || state == "22P05" || state == "54000" {
                var refused = EventLogError(.invalidEvent, "the event data was refused by the database")
                refused.cause = DatabaseURL.describe(error)
                return refused
            }
        }
        var storage = EventLogError(.storage, "the event log could not be written or read")
        storage.cause = DatabaseURL.describe(error)
        storage.databaseFault = DatabaseFault.classify(error)
        return storage
    }

    // MARK: - Read

    /// Up to `limit` events of a tenant's log after `seq`, in order.
    public func read(tenant: TenantID, after seq: Int64 = 0, limit: Int = 1000) async throws(EventLogError) -> [RecordedEvent] {
        do {
            return try await database.readTenant(tenant) { session in try await read(after: seq, limit: limit, in: session) }
        } catch {
            throw Self.map(error)
        }
    }

    /// Up to `limit` events after `seq`, inside a transaction the caller holds (already entered
    /// into the tenant), so that what is read and what is written with it commit together.
    public func read(after seq: Int64, limit: Int, in session: TenantSession) async throws(EventLogError) -> [RecordedEvent] {
        do {
            var events: [RecordedEvent] = []
            let rows = try await session.execute(ReadTenantLog(tenant: session.tenant, after: seq, limit: Int64(max(0, limit))))
            for try await row in rows { events.append(try RecordedEvent(tenant: session.tenant, row: row)) }
            return events
        } catch {
            throw Self.map(error)
        }
    }

    public func events(tenant: TenantID, after seq: Int64 = 0, pageSize: Int = 1000) -> EventSequence {
        EventSequence(store: self, tenant: tenant, after: seq, pageSize: pageSize)
    }

    /// A stream's events in version order, optionally only those recorded at or before `until`.
    public func read(tenant: TenantID, stream: StreamName, after version: Int = 0, until: Date? = nil, limit: Int = 10_000) async throws(EventLogError) -> [RecordedEvent] {
        do {
            return try await database.readTenant(tenant) { session in
                try await read(stream: stream, after: version, until: until, limit: limit, in: session)
            }
        } catch {
            throw Self.map(error)
        }
    }

    /// A stream's events in the session's tenant, read with the session's snapshot.
    public func read(stream: StreamName, after version: Int = 0, until: Date? = nil, limit: Int = 10_000, in session: TenantSession) async throws(EventLogError) -> [RecordedEvent] {
        let bound = until.map(Timestamps.bound) ?? "infinity"
        do {
            var events: [RecordedEvent] = []
            let rows = try await session.execute(
                ReadStream(tenant: session.tenant, stream: stream, afterVersion: Int32(clamping: version), until: bound, limit: Int64(limit)))
            for try await row in rows { events.append(try RecordedEvent(tenant: session.tenant, row: row)) }
            return events
        } catch {
            throw Self.map(error)
        }
    }

    /// A tenant's events recorded at or before `time`, in order.
    public func read(tenant: TenantID, until time: Date, after seq: Int64 = 0, limit: Int = 1000) async throws(EventLogError) -> [RecordedEvent] {
        let bound = Timestamps.bound(time)
        do {
            return try await database.readTenant(tenant) { session in
                var events: [RecordedEvent] = []
                let rows = try await session.query(
                    """
                    SELECT \(unescaped: EventColumns.list) FROM events
                     WHERE tenant_id = \(session.tenant) AND seq > \(seq) AND recorded_at <= \(bound)::timestamptz
                     ORDER BY seq LIMIT \(limit)
                    """)
                for try await row in rows.decode(EventColumns.Row.self) { events.append(try RecordedEvent(tenant: tenant, row: row)) }
                return events
            }
        } catch {
            throw Self.map(error)
        }
    }

    /// Every tenant that has events, with its last seq. Platform use only: shows no event.
    public func tenantHeads() async throws(EventLogError) -> [TenantID: Int64] {
        do {
            var heads: [TenantID: Int64] = [:]
            let rows = try await client.query("SELECT tenant_id, last_seq FROM tenant_log_heads()", logger: logger)
            for try await (tenant, last) in rows.decode((UUID, Int64).self) { heads[TenantID(tenant)] = last }
            return heads
        } catch {
            throw Self.map(error)
        }
    }

    /// The next events across all tenants, for platform readers (analytics, exports).
    ///
    /// The position is a cursor per tenant, never a global sequence or a time: an event that
    /// commits late is still after its tenant's cursor, so it is never skipped. Each tenant is
    /// read under its own tenant setting; row-level security stays on.
    public func readAll(after cursors: [TenantID: Int64], limitPerTenant: Int = 500) async throws(EventLogError) -> [TenantID: [RecordedEvent]] {
        var result: [TenantID: [RecordedEvent]] = [:]
        for (tenant, last) in try await tenantHeads().sorted(by: { $0.key < $1.key }) where last > cursors[tenant, default: 0] {
            let events = try await read(tenant: tenant, after: cursors[tenant, default: 0], limit: limitPerTenant)
            if !events.isEmpty { result[tenant] = events }
        }
        return result
    }

    /// Creates a partition of its own for a tenant that has no events yet.
    public func createDedicatedPartition(for tenant: TenantID) async throws(EventLogError) -> String {
        do {
            let rows = try await client.query("SELECT create_tenant_partition(\(tenant))", logger: logger)
            return try await rows.collect().first?.decode(String.self) ?? ""
        } catch {
            throw Self.map(error)
        }
    }
}

/// A tenant's log read a page at a time.
public struct EventSequence: AsyncSequence, Sendable {
    public typealias Element = RecordedEvent

    let store: EventStore
    let tenant: TenantID
    let after: Int64
    let pageSize: Int

    public struct AsyncIterator: AsyncIteratorProtocol {
        let sequence: EventSequence
        var position: Int64
        var buffer: [RecordedEvent] = []
        var bufferIndex = 0
        var exhausted = false

        public mutating func next() async throws(EventLogError) -> RecordedEvent? {
            if bufferIndex == buffer.count {
                guard !exhausted else { return nil }
                buffer = try await sequence.store.read(tenant: sequence.tenant, after: position, limit: sequence.pageSize)
                bufferIndex = 0
                exhausted = buffer.count < sequence.pageSize
                guard !buffer.isEmpty else { return nil }
            }
            let event = buffer[bufferIndex]
            bufferIndex += 1
            position = event.seq
            return event
        }
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(sequence: self, position: after)
    }
}

extension RecordedEvent {
    init(tenant: TenantID, row: EventColumns.Row) throws(EventLogError) {
        let (seq, streamType, streamID, streamVersion, type, schemaVersion, data, metadata, recordedAt, prevHash, hash) = row
        do {
            self.init(
                tenant: tenant, seq: seq, stream: try StreamName(type: streamType, id: streamID),
                streamVersion: Int(streamVersion), type: type, schemaVersion: Int(schemaVersion),
                data: try CanonicalJSON.parse(Array(data.utf8)), metadataJSON: try CanonicalJSON.parse(Array(metadata.utf8)),
                recordedAtText: recordedAt, prevHash: Array(buffer: prevHash), hash: Array(buffer: hash)
            )
        } catch let error as EventLogError {
            throw error
        } catch {
            throw EventLogError(.decodingFailed, "stored event \(seq) of tenant \(tenant) does not parse: \(error)")
        }
    }
}

extension Array where Element == UInt8 {
    init(buffer: ByteBuffer) {
        self = buffer.getBytes(at: buffer.readerIndex, length: buffer.readableBytes) ?? []
    }
}
