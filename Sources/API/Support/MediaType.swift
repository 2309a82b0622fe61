import Foundation
import Hummingbird

/// The media types request bodies may have.
enum MediaType {
    /// `application/json`, with parameters or none; a charset, if named, must be UTF-8 (RFC 8259
    /// knows no other). Anything else, or no `Content-Type` at all, is 415.
    static func requireJSON(_ contentType: String?) throws {
        guard let contentType else {
            throw unsupported("The request has a body but no Content-Type: send it as application/json.")
        }
        let parts = contentType.split(separator: ";", omittingEmptySubsequences: false)
            .map { $0.trimmingCharacters(in: .whitespaces) }
        guard let essence = parts.first, essence.lowercased() == "application/json" else {
            throw unsupported("Content-Type \(quoted(contentType)) is not supported: send the body as application/json.")
        }
        for parameter in parts.dropFirst() where !parameter.isEmpty {
            let pair = parameter.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard pair.count == 2 else {
                throw unsupported("Content-Type \(quoted(contentType)) is malformed: send the body as application/json.")
            }
            if pair[0].lowercased() == "charset" {
                let charset = pair[1].trimmingCharacters(in: CharacterSet(charactersIn: "\"")).lowercased()
                guard charset == "utf-8" || charset == "utf8" else {
                    throw unsupported("JSON bodies are UTF-8; charset \(quoted(pair[1])) is not supported.")
                }
            }
        }
    }

    static func unsupported(_ detail: String) -> Problem {
        Problem(type: Problem.typeBase + "unsupported-media-type", title: "Unsupported Media Type", status: .unsupportedMediaType,
                detail: detail)
    }

    /// Client text in a message: bounded, so a long header cannot make a long answer.
    static func quoted(_ text: String) -> String {
        "\"" + (text.count > 80 ? String(text.prefix(80)) + "…" : text) + "\""
    }
}
