import EventLog

/// Terse JSON Schema (2020-12, as OpenAPI 3.1 uses it) fragments for the OpenAPI document.
enum JSONSchema {
    static func ref(_ name: String) -> JSONValue {
        .object(["$ref": .string("#/components/schemas/\(name)")])
    }

    static func string(
        format: String? = nil, pattern: String? = nil, values: [String]? = nil, minLength: Int? = nil, maxLength: Int? = nil,
        nullable: Bool = false, description: String? = nil
    ) -> JSONValue {
        JSONValue.compact([
            "type": nullable ? .array([.string("string"), .string("null")]) : .string("string"),
            "format": format.map(JSONValue.string),
            "pattern": pattern.map(JSONValue.string),
            "enum": values.map { .array($0.map(JSONValue.string) + (nullable ? [.null] : [])) },
            "minLength": minLength.map { .number(Double($0)) },
            "maxLength": maxLength.map { .number(Double($0)) },
            "description": description.map(JSONValue.string),
        ])
    }

    static func integer(
        minimum: Int? = nil, maximum: Int? = nil, defaultValue: Int? = nil, nullable: Bool = false, description: String? = nil
    ) -> JSONValue {
        JSONValue.compact([
            "type": nullable ? .array([.string("integer"), .string("null")]) : .string("integer"),
            "minimum": minimum.map { .number(Double($0)) },
            "maximum": maximum.map { .number(Double($0)) },
            "default": defaultValue.map { .number(Double($0)) },
            "description": description.map(JSONValue.string),
        ])
    }

    static func number(nullable: Bool = false) -> JSONValue {
        .object(["type": nullable ? .array([.string("number"), .string("null")]) : .string("number")])
    }

    static let boolean: JSONValue = .object(["type": .string("boolean")])

    /// Any JSON value at all.
    static let anyValue: JSONValue = .object([:])

    static func array(_ items: JSONValue) -> JSONValue {
        .object(["type": .string("array"), "items": items])
    }

    /// An object with the given properties; `closed` when the server refuses members it does not know.
    static func object(
        _ properties: KeyValuePairs<String, JSONValue>, required: [String] = [], closed: Bool = false, description: String? = nil
    ) -> JSONValue {
        JSONValue.compact([
            "type": .string("object"),
            "description": description.map(JSONValue.string),
            "properties": .object(properties),
            "required": required.isEmpty ? nil : .array(required.map(JSONValue.string)),
            "additionalProperties": closed ? .bool(false) : nil,
        ])
    }

    /// `{"items": [...], "next_cursor": "..." | null}`, the shape of every paginated list.
    static func page(of item: String) -> JSONValue {
        object([
            "items": array(ref(item)),
            "next_cursor": string(nullable: true, description: "Pass as `cursor` for the next page; null on the last page."),
        ], required: ["items", "next_cursor"])
    }

    /// `{"items": [...]}`, a list returned whole.
    static func list(of item: String) -> JSONValue {
        object(["items": array(ref(item))], required: ["items"])
    }
}

extension JSONValue {
    /// An object of the members whose value is not nil, in the order given.
    static func compact(_ pairs: KeyValuePairs<String, JSONValue?>) -> JSONValue {
        .object(pairs.compactMap { pair in pair.value.map { Member(pair.key, $0) } })
    }
}
