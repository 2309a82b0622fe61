import EventLog
import Foundation

/// Holds JSON values against the schemas of an OpenAPI 3.1 document: the JSON Schema keywords
/// the document uses (`$ref`, `type` with null, `enum`, `properties`, `required`,
/// `additionalProperties: false`, `items`, `minimum`/`maximum`, `minLength`/`maxLength` in code
/// points, `pattern`, and the `date-time`, `date` and `uuid` formats). A keyword it does not know
/// is a problem of its own, so the check cannot pass by ignoring what it was asked to check.
struct SchemaCheck {
    let document: JSONValue

    struct Failure: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    static let known: Set<String> = [
        "$ref", "type", "enum", "properties", "required", "additionalProperties", "items", "minimum", "maximum",
        "minLength", "maxLength", "pattern", "format", "description", "default",
    ]

    /// Every way `value` breaks `schema`, as "location: reason"; empty when it conforms.
    func problems(_ value: JSONValue, _ schema: JSONValue, at path: String = "$") -> [String] {
        guard case .object(let keywords) = schema else { return ["\(path): the schema is not an object"] }
        if let unknown = keywords.first(where: { !Self.known.contains($0.key) }) {
            return ["\(path): the check does not know the keyword \(unknown.key)"]
        }
        if let reference = schema["$ref"]?.stringValue {
            guard let target = OpenAPITests.resolve(reference, in: document) else { return ["\(path): \(reference) does not resolve"] }
            return problems(value, target, at: path)
        }
        if let type = schema["type"] {
            let allowed: [String] = switch type {
            case .string(let one): [one]
            case .array(let many): many.compactMap(\.stringValue)
            default: []
            }
            guard allowed.contains(where: { Self.value(value, is: $0) }) else {
                return ["\(path): \(Self.describe(value)) is not of type \(allowed.joined(separator: " or "))"]
            }
        }
        var found: [String] = []
        if case .array(let values)? = schema["enum"], !values.contains(value) {
            found.append("\(path): \(Self.describe(value)) is not one of the enum")
        }
        switch value {
        case .string(let text):
            let length = Double(text.unicodeScalars.count)
            if let minimum = schema["minLength"]?.numberValue, length < minimum { found.append("\(path): shorter than \(Int(minimum))") }
            if let maximum = schema["maxLength"]?.numberValue, length > maximum { found.append("\(path): longer than \(Int(maximum))") }
            if let pattern = schema["pattern"]?.stringValue, !Self.matches(text, pattern) {
                found.append("\(path): \(Self.describe(value)) does not match \(pattern)")
            }
            if let format = schema["format"]?.stringValue, !Self.conforms(text, format: format) {
                found.append("\(path): \(Self.describe(value)) is not a \(format)")
            }
        case .number(let number):
            if let minimum = schema["minimum"]?.numberValue, number < minimum { found.append("\(path): \(number) < \(minimum)") }
            if let maximum = schema["maximum"]?.numberValue, number > maximum { found.append("\(path): \(number) > \(maximum)") }
        case .array(let items):
            if let itemSchema = schema["items"] {
                for (index, item) in items.enumerated() { found += problems(item, itemSchema, at: "\(path)[\(index)]") }
            }
        case .object(let members):
            if case .array(let required)? = schema["required"] {
                for name in required.compactMap(\.stringValue) where value[name] == nil { found.append("\(path): lacks \(name)") }
            }
            let properties = schema["properties"]
            for member in members {
                if let property = properties?[member.key] {
                    found += problems(member.value, property, at: "\(path).\(member.key)")
                } else if let additional = schema["additionalProperties"] {
                    if additional == .bool(false) {
                        found.append("\(path): has \(member.key), which the schema does not allow")
                    } else {
                        found += problems(member.value, additional, at: "\(path).\(member.key)")
                    }
                }
            }
        case .null, .bool: break
        }
        return found
    }

    static func value(_ value: JSONValue, is type: String) -> Bool {
        switch (type, value) {
        case ("null", .null), ("boolean", .bool), ("string", .string), ("array", .array), ("object", .object), ("number", .number): true
        case ("integer", .number(let number)): number.rounded() == number
        default: false
        }
    }

    /// ECMA-262 and ICU agree on what the document's patterns use: classes, `\xhh`, `\uhhhh`, anchors.
    static func matches(_ text: String, _ pattern: String) -> Bool {
        guard let regex = try? NSRegularExpression(pattern: pattern) else { return false }
        return regex.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)) != nil
    }

    static func conforms(_ text: String, format: String) -> Bool {
        switch format {
        case "uuid": UUID(uuidString: text) != nil
        case "date-time": matches(text, #"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})$"#)
        case "date": matches(text, #"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"#)
        default: true // uri, email: annotations here
        }
    }

    static func describe(_ value: JSONValue) -> String {
        String(decoding: CanonicalJSON.serialize(value).prefix(120), as: UTF8.self)
    }
}
