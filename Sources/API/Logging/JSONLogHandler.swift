import Foundation
import Logging

/// One JSON object per line: `time`, `level`, `label`, `message` and the metadata as string fields.
/// For log shippers; the text format is `TextLogHandler`.
public struct JSONLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .info
    public var metadataProvider: Logger.MetadataProvider?
    private let label: String
    private let output: @Sendable (Data) -> Void

    /// `output` receives each line, newline included; standard error unless told otherwise.
    public init(label: String, metadataProvider: Logger.MetadataProvider? = nil,
                output: @escaping @Sendable (Data) -> Void = { FileHandle.standardError.write($0) }) {
        self.label = label
        self.metadataProvider = metadataProvider
        self.output = output
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var fields: [String: String] = [:]
        for (key, value) in Logger.Metadata.merged(metadata, metadataProvider, event.metadata) { fields[key] = "\(value)" }
        fields["time"] = Date().formatted(.iso8601.year().month().day().time(includingFractionalSeconds: true).timeZone(separator: .omitted))
        fields["level"] = event.level.rawValue
        fields["label"] = label
        fields["message"] = "\(event.message)"
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        guard var line = try? encoder.encode(fields) else { return }
        line.append(0x0A)
        output(line)
    }
}

extension Logger.Metadata {
    /// A handler's own metadata, then its provider's, then the event's: a later one wins a key.
    static func merged(_ own: Logger.Metadata, _ provider: Logger.MetadataProvider?, _ event: Logger.Metadata?) -> Logger.Metadata {
        var all = own
        for (key, value) in provider?.get() ?? [:] { all[key] = value }
        for (key, value) in event ?? [:] { all[key] = value }
        return all
    }
}
