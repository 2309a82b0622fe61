import Database

/// The one error type of the event log: a code to branch on and a message safe to show.
public struct EventLogError: Error, Sendable, Equatable, CustomStringConvertible, CustomDebugStringConvertible, CarriesDatabaseFault {
    public enum Code: String, Sendable, CaseIterable {
        /// The stream is not at the version the caller expected; nothing was written.
        case wrongExpectedVersion = "wrong_expected_version"
        case emptyAppend = "empty_append"
        case invalidStream = "invalid_stream"
        case invalidEvent = "invalid_event"
        case eventTooLarge = "event_too_large"
        case unknownEventType = "unknown_event_type"
        case upcastFailed = "upcast_failed"
        case decodingFailed = "decoding_failed"
        case storage = "storage"
    }

    public let code: Code
    public let message: String
    /// For `wrongExpectedVersion`: the stream's actual version (0 when it does not exist).
    public let actualVersion: Int?
    /// For `storage`: set when the database was unreachable or timed out, rather than broken.
    public var databaseFault: DatabaseFault?
    /// What went wrong underneath, for logs only (it may name tables or server messages).
    public var cause: String?

    public init(_ code: Code, _ message: String, actualVersion: Int? = nil) {
        self.code = code
        self.message = message
        self.actualVersion = actualVersion
    }

    /// Safe to show to a caller.
    public var description: String { message }

    /// For logs: the code, the message and the cause.
    public var debugDescription: String { "EventLogError.\(code.rawValue): \(message)" + (cause.map { " (\($0))" } ?? "") }
}
