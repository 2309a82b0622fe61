import Database
import Foundation
import Testing
@testable import EventLog

@Suite struct CanonicalJSONTests {
    // Number vectors from RFC 8785 appendix B and ECMAScript's Number.prototype.toString.
    @Test(arguments: [
        (0.0, "0"), (-0.0, "0"), (1.0, "1"), (-1.0, "-1"), (4.5, "4.5"), (0.002, "0.002"), (1e-7, "1e-7"),
        (1e21, "1e+21"), (1e20, "100000000000000000000"), (123456789012345680000.0, "123456789012345680000"),
        (333333333.33333329, "333333333.3333333"), (1e30, "1e+30"), (9007199254740992.0, "9007199254740992"),
        (-Double.leastNonzeroMagnitude, "-5e-324"), (1.7976931348623157e308, "1.7976931348623157e+308"), (0.000001, "0.000001"),
        (1.5e-6, "0.0000015"), (2e-7, "2e-7"), (100.0, "100"), (295147905179352830000.0, "295147905179352830000"),
    ])
    func `numbers are written the way ECMAScript writes them`(number: Double, expected: String) {
        #expect(CanonicalJSON.format(number) == expected)
    }

    @Test func `object members are sorted by UTF-16 code units and whitespace is dropped`() throws {
        let value = try CanonicalJSON.parse(#"{ "b": [1, 2.50, true, null], "a": {"z": "x", "\u20ac": 1, "\r": 2, "1": 3, "\u00f6": 4, "\ud83d\ude00": 5} }"#)
        #expect(CanonicalJSON.string(value) == "{\"a\":{\"\\r\":2,\"1\":3,\"z\":\"x\",\"ö\":4,\"€\":1,\"😀\":5},\"b\":[1,2.5,true,null]}")
    }

    @Test func `strings escape only quotes, backslashes and control characters`() throws {
        let value = JSONValue.string("a\"b\\c\u{08}\u{0C}\n\r\t\u{01}\u{1F}/é")
        #expect(CanonicalJSON.string(value) == #""a\"b\\c\b\f\n\r\t\u0001\u001f/é""#)
    }

    @Test(arguments: [
        #"{"a":1,"a":2}"#, #"{"a":1"#, "[1,]", "01", "1.", "-", "1e", "\"\u{01}\"", "1e400", #""\ud800""#, "nul", "{} x", "'a'",
    ])
    func `what JCS cannot represent is refused`(text: String) {
        #expect(throws: CanonicalJSON.ParseError.self) { try CanonicalJSON.parse(text) }
    }

    @Test func `invalid UTF-8 and overlong encodings are refused`() {
        #expect(throws: CanonicalJSON.ParseError.self) { try CanonicalJSON.parse([0x22, 0xC3, 0x28, 0x22]) }
        #expect(throws: CanonicalJSON.ParseError.self) { try CanonicalJSON.parse([0x22, 0xC0, 0xAF, 0x22]) }
        #expect(throws: CanonicalJSON.ParseError.self) { try CanonicalJSON.parse([0x22, 0xED, 0xA0, 0x80, 0x22]) }
    }

    @Test func `nesting deeper than the limit is refused instead of overflowing the stack`() {
        let deep = String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000)
        #expect(throws: CanonicalJSON.ParseError.self) { try CanonicalJSON.parse(deep) }
    }

    @Test func `canonical output parses back to the same value`() throws {
        let text = #"{"name":"Rex \"the\" dog","tags":["a","b"],"weight":12.25,"nested":{"ok":false,"none":null}}"#
        let value = try CanonicalJSON.parse(text)
        let canonical = CanonicalJSON.serialize(value)
        #expect(CanonicalJSON.serialize(try CanonicalJSON.parse(canonical)) == canonical)
        #expect(try CanonicalJSON.parse(canonical)["weight"] == .number(12.25))
    }

    @Test func `the append path's spliced bytes equal the canonical serialization of the whole event`() throws {
        let tenant = TenantID()
        let stream = try StreamName(type: "pet", id: UUID())
        let data = try CanonicalJSON.parse(#"{"name":"Rex","quote":"\"hi\"","n":1.5}"#)
        let metadata = EventMetadata(actor: "user-1", requestID: "req-1").json
        let whole = CanonicalEvent.bytes(
            tenant: tenant, seq: 42, stream: stream, streamVersion: 3, type: "Pet\"Registered", schemaVersion: 2,
            data: data, metadata: metadata, recordedAt: "2026-11-29T02:55:43.123456Z")
        let spliced = CanonicalEvent.bytes(
            tenant: tenant.description, seq: 42, streamType: "pet", streamID: stream.id.uuidString.lowercased(), streamVersion: 3,
            type: CanonicalJSON.serialize(.string("Pet\"Registered")), schemaVersion: 2, canonicalData: CanonicalJSON.serialize(data),
            canonicalMetadata: CanonicalJSON.serialize(metadata), recordedAt: "2026-11-29T02:55:43.123456Z")
        #expect(whole == spliced)
    }

    @Test func `times are formatted exactly to the microsecond in UTC`() {
        #expect(Timestamps.format(microseconds: 0) == "1970-01-01T00:00:00.000000Z")
        #expect(Timestamps.format(microseconds: 1_795_920_943_123_456) == "2026-11-29T02:55:43.123456Z")
        #expect(Timestamps.format(microseconds: -1) == "1969-12-31T23:59:59.999999Z")
        #expect(Timestamps.format(microseconds: 951_782_400_000_000) == "2000-02-29T00:00:00.000000Z")
        let date = Timestamps.parse("2026-11-29T02:55:43.123456Z")
        #expect(date.map(Timestamps.format) == "2026-11-29T02:55:43.123456Z")
    }
}

@Suite struct StoredTimeTests {
    @Test(arguments: [0, 1, 951_782_400_000_000, 1_795_920_943_123_456, 4_102_444_799_999_999, -1] as [Int64])
    func `the fast parser of stored times agrees with the formatter`(micros: Int64) {
        #expect(Timestamps.microseconds(ofStored: Timestamps.format(microseconds: micros)) == micros)
    }

    @Test func `anything but the stored form is refused`() {
        #expect(Timestamps.microseconds(ofStored: "2026-11-29T02:55:43Z") == nil)
        #expect(Timestamps.microseconds(ofStored: "2026-11-29T02:55:43.12345xZ") == nil)
    }
}
