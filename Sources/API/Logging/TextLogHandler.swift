import Foundation
import Logging

/// One line per event in swift-log's `StreamLogHandler` text format:
/// `2026-12-07T04:04:25+0000 info petstore: key=value [source] message`.
///
/// `StreamLogHandler` formats its whole metadata each time a key is set, and every request sets
/// two or three (request id, tenant, principal) whatever the level: under load that was a few
/// percent of the server's time, spent on lines never written. Here metadata is formatted only
/// for a line that is written.
public struct TextLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .info
    public var metadataProvider: Logger.MetadataProvider?
    private let label: String
    private let output: @Sendable (String) -> Void

    /// `output` receives each line, newline included; standard error unless told otherwise.
    public init(label: String, metadataProvider: Logger.MetadataProvider? = nil,
                output: @escaping @Sendable (String) -> Void = { line in FileHandle.standardError.write(Data(line.utf8)) }) {
        self.label = label
        self.metadataProvider = metadataProvider
        self.output = output
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        let pretty = Logger.Metadata.merged(metadata, metadataProvider, event.metadata).sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        output("\(Self.timestamp()) \(event.level) \(label):\(pretty.isEmpty ? "" : " " + pretty) [\(event.source)] \(event.message)\n")
    }

    private static func timestamp() -> String {
        var buffer = [Int8](repeating: 0, count: 32)
        var seconds = time(nil)
        var parts = tm()
        localtime_r(&seconds, &parts)
        let length = strftime(&buffer, buffer.count, "%Y-%m-%dT%H:%M:%S%z", &parts)
        return String(decoding: buffer.prefix(length).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
