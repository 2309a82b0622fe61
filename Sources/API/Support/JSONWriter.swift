import EventLog
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// Writes JSON straight into bytes, for the responses served most (a page of 100 pets): on Linux
/// Foundation's `JSONEncoder`, with snake_case keys converted per key and per encode, is most of
/// what a list costs. The output is what `JSONResponse.encoder` writes for the same value: keys
/// in sorted order, snake_case, times as `Timestamps.format`, `/` unescaped.
struct JSONWriter {
    private(set) var bytes: [UInt8] = []
    /// Whether the next member or element needs a comma before it.
    private var needsComma = false

    init(capacity: Int = 256) {
        bytes.reserveCapacity(capacity)
    }

    mutating func object(_ body: (inout JSONWriter) -> Void) {
        separate()
        bytes.append(UInt8(ascii: "{"))
        needsComma = false
        body(&self)
        bytes.append(UInt8(ascii: "}"))
        needsComma = true
    }

    mutating func array<S: Sequence>(_ elements: S, _ write: (inout JSONWriter, S.Element) -> Void) {
        separate()
        bytes.append(UInt8(ascii: "["))
        needsComma = false
        for element in elements { write(&self, element) }
        bytes.append(UInt8(ascii: "]"))
        needsComma = true
    }

    /// A member's key; its value follows.
    mutating func key(_ name: StaticString) {
        separate()
        bytes.append(UInt8(ascii: "\""))
        name.withUTF8Buffer { bytes.append(contentsOf: $0) }
        bytes.append(contentsOf: [UInt8(ascii: "\""), UInt8(ascii: ":")])
        needsComma = false
    }

    mutating func string(_ value: String?) {
        separate()
        guard let value else { return null() }
        CanonicalJSON.writeString(value, to: &bytes)
        needsComma = true
    }

    mutating func time(_ value: Date) {
        string(Timestamps.format(value))
    }

    mutating func time(_ value: Date?) {
        string(value.map(Timestamps.format))
    }

    mutating func int(_ value: Int) {
        separate()
        bytes.append(contentsOf: String(value).utf8)
        needsComma = true
    }

    mutating func bool(_ value: Bool) {
        separate()
        bytes.append(contentsOf: (value ? "true" : "false").utf8)
        needsComma = true
    }

    mutating func null() {
        separate()
        bytes.append(contentsOf: "null".utf8)
        needsComma = true
    }

    private mutating func separate() {
        if needsComma { bytes.append(UInt8(ascii: ",")) }
        needsComma = false
    }
}

/// A value that writes itself as JSON, the same as its `Encodable` conformance would.
protocol JSONWritable: Encodable {
    func write(to writer: inout JSONWriter)
}

extension ListPage: JSONWritable where Item: JSONWritable {
    func write(to writer: inout JSONWriter) {
        writer.object { writer in
            writer.key("items")
            writer.array(items) { writer, item in item.write(to: &writer) }
            writer.key("next_cursor")
            writer.string(nextCursor)
        }
    }
}

extension JSONResponse {
    static func make(_ value: some JSONWritable, status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) -> Response {
        var writer = JSONWriter(capacity: 4096)
        value.write(to: &writer)
        var headers = headers
        headers[.contentType] = "application/json"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: writer.bytes)))
    }
}
