import Domain
import Foundation
import Testing

@Suite struct ConfigValueTests {
    func decode(_ json: String, with decoder: JSONDecoder = JSONDecoder()) throws -> ConfigValue {
        try decoder.decode(ConfigValue.self, from: Data(json.utf8))
    }

    func encode(_ value: ConfigValue) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }

    @Test func `every JSON type decodes to its case`() throws {
        let value = try decode(#"{"a":[1,true,null,"x",{"b":2.5}],"c":false}"#)
        #expect(value == .object([
            "a": .array([.number(1), .bool(true), .null, .string("x"), .object(["b": .number(2.5)])]),
            "c": .bool(false),
        ]))
    }

    @Test func `booleans stay booleans and numbers stay numbers`() throws {
        #expect(try decode("true") == .bool(true))
        #expect(try decode("1") == .number(1))
        #expect(try decode("0") == .number(0))
    }

    @Test func `encoding writes sorted keys and decodes back to the same value`() throws {
        let value = ConfigValue.object(["zeta": .number(1), "alpha": .array([.string("b"), .null]), "mid": .bool(true)])
        let text = try encode(value)
        #expect(text == #"{"alpha":["b",null],"mid":true,"zeta":1}"#)
        #expect(try decode(text) == value)
    }

    @Test func `a tenant's own keys survive the event log's snake_case strategies`() throws {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.sortedKeys]
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        let value = ConfigValue.object(["camelCase": .object(["innerKey": .number(2)]), "snake_key": .bool(true)])
        let data = try encoder.encode(value)
        #expect(String(decoding: data, as: UTF8.self) == #"{"camelCase":{"innerKey":2},"snake_key":true}"#)
        #expect(try decoder.decode(ConfigValue.self, from: data) == value)
    }

    @Test func `encodedSize counts the bytes of the sorted JSON`() {
        #expect(ConfigValue.object(["b": .number(1), "a": .string("x")]).encodedSize == #"{"a":"x","b":1}"#.utf8.count)
        #expect(ConfigValue.null.encodedSize == 4)
        #expect(ConfigValue.string("é").encodedSize == 4)
        #expect(ConfigValue.string("a/b").encodedSize == 5)
    }

    @Test func `a value JSON cannot represent reports an unbounded size`() {
        #expect(ConfigValue.number(.infinity).encodedSize == Int.max)
        #expect(!ConfigValue.object(["x": .number(.nan)]).isRepresentableAsJSON)
        #expect(ConfigValue.object(["x": .number(1)]).isRepresentableAsJSON)
    }
}
