import Domain
import Foundation
import Testing

@Suite struct ValidationTests {
    /// The field errors of registering a pet with the given name, species, breed and microchip.
    func problems(
        name: String = "Rex", species: String = "dog", breed: String? = nil, microchipID: String? = nil
    ) -> [FieldError] {
        do {
            _ = try Pet.decide(.register(id: Fixture.petID, name: name, species: species, breed: breed, microchipID: microchipID, at: Fixture.start), nil)
            return []
        } catch {
            return error.fieldErrors
        }
    }

    // MARK: Names

    @Test func `a name of 100 characters is accepted and 101 is refused`() {
        #expect(problems(name: String(repeating: "a", count: 100)).isEmpty)
        #expect(problems(name: String(repeating: "a", count: 101)).map(\.field) == ["name"])
    }

    @Test func `names are counted in characters, not bytes or scalars`() {
        let serviceDog = "🐕‍🦺"  // three scalars, eleven UTF-8 bytes, one character
        #expect(serviceDog.unicodeScalars.count == 3)
        #expect(serviceDog.utf8.count == 11)
        #expect(problems(name: String(repeating: serviceDog, count: 100)).isEmpty)
        #expect(problems(name: String(repeating: serviceDog, count: 101)).map(\.field) == ["name"])
        #expect(problems(name: String(repeating: "e\u{301}", count: 100)).isEmpty)
    }

    @Test func `whitespace around a name does not count towards its length`() {
        #expect(problems(name: "   " + String(repeating: "a", count: 100) + "\n").isEmpty)
    }

    @Test func `a blank name is required`() {
        #expect(problems(name: " \t\n") == [FieldError(field: "name", message: "is required")])
    }

    @Test(arguments: ["Rex\u{0}", "Re\u{7}x", "Rex\tMax", "Rex\nMax", "\u{1F}Rex", "Rex\u{7F}"])
    func `a name with a control character is refused`(name: String) {
        #expect(problems(name: name) == [FieldError(field: "name", message: "must not contain control characters")])
    }

    @Test func `characters just outside the control range are accepted`() {
        #expect(problems(name: "Rex ~ \u{80}\u{A0}Max").isEmpty)
    }

    @Test func `species is 1 to 50 characters`() {
        #expect(problems(species: String(repeating: "s", count: 50)).isEmpty)
        #expect(problems(species: String(repeating: "s", count: 51)).map(\.field) == ["species"])
        #expect(problems(species: "").map(\.field) == ["species"])
    }

    @Test func `breed is optional and at most 100 characters`() {
        #expect(problems(breed: nil).isEmpty)
        #expect(problems(breed: String(repeating: "b", count: 100)).isEmpty)
        #expect(problems(breed: String(repeating: "b", count: 101)).map(\.field) == ["breed"])
    }

    // MARK: Microchips

    @Test(arguments: ["123456789", "123456789012345", "000000000"])
    func `a microchip of 9 to 15 digits is accepted`(chip: String) {
        #expect(problems(microchipID: chip).isEmpty)
    }

    @Test(arguments: ["12345678", "1234567890123456", "12345678a", "123 456 789", "-12345678", "１２３４５６７８９", "١٢٣٤٥٦٧٨٩", "12345678.9"])
    func `a microchip that is not 9 to 15 ASCII digits is refused`(chip: String) {
        #expect(problems(microchipID: chip) == [FieldError(field: "microchip_id", message: "must be 9 to 15 digits")])
    }

    // MARK: Configuration

    func configProblems(_ key: String, _ value: ConfigValue) -> [FieldError] {
        var validation = Validation()
        validation.configKey(key)
        validation.configValue(value, forKey: key)
        return validation.errors
    }

    func keyProblems(_ key: String) -> [FieldError] {
        var validation = Validation()
        validation.configKey(key)
        return validation.errors
    }

    @Test(arguments: ["a", "include_deleted_pets", "ui.theme_2", "0", String(repeating: "k", count: 64)])
    func `a config key of lowercase letters, digits, underscores and dots is accepted`(key: String) {
        #expect(keyProblems(key).isEmpty)
    }

    @Test(arguments: ["", String(repeating: "k", count: 65), "Theme", "with-dash", "with space", "ключ", "a/b", "a\u{0}"])
    func `a config key outside the pattern is refused`(key: String) {
        #expect(keyProblems(key) == [FieldError(field: "key", message: "must be 1 to 64 of a-z, 0-9, '_' and '.'")])
    }

    @Test(arguments: [ConfigValue.string("true"), .number(1), .null, .array([.bool(true)]), .object(["value": .bool(true)])])
    func `include_deleted_pets must be a boolean`(value: ConfigValue) {
        #expect(configProblems("include_deleted_pets", value) == [FieldError(field: "value", message: "must be a boolean for include_deleted_pets")])
    }

    @Test func `include_deleted_pets accepts both booleans`() {
        #expect(configProblems("include_deleted_pets", .bool(true)).isEmpty)
        #expect(configProblems("include_deleted_pets", .bool(false)).isEmpty)
    }

    @Test func `an unknown key takes any JSON up to 4096 bytes`() {
        let exactly4096 = ConfigValue.string(String(repeating: "x", count: 4094))
        #expect(exactly4096.encodedSize == 4096)
        #expect(configProblems("banner", exactly4096).isEmpty)
        #expect(configProblems("banner", .object(["a": .array([.null, .number(1.5), .string("é")])])).isEmpty)
    }

    @Test func `an unknown key's value of 5 KiB is refused`() {
        let large = ConfigValue.array(Array(repeating: .string(String(repeating: "x", count: 1022)), count: 5))
        #expect(large.encodedSize > 5000)
        #expect(configProblems("banner", large) == [FieldError(field: "value", message: "must be at most 4096 bytes of JSON")])
        #expect(configProblems("banner", .string(String(repeating: "x", count: 4095))).map(\.field) == ["value"])
    }

    @Test func `a number JSON cannot carry is refused`() {
        #expect(configProblems("ratio", .number(.nan)).map(\.field) == ["value"])
        #expect(configProblems("ratio", .array([.number(.infinity)])).map(\.field) == ["value"])
    }

    @Test(arguments: [
        ConfigValue.string("a\u{0}b"), .object(["a\u{0}": .bool(true)]), .array([.object(["deep": .array([.string("\u{0}")])])]),
        .object(["outer": .object(["in\u{0}ner": .null])]),
    ])
    func `U+0000 in a string or a key, at any depth, is refused`(value: ConfigValue) {
        #expect(configProblems("banner", value) == [FieldError(field: "value", message: "must not contain U+0000 (\\u0000) in a string or a key")])
    }

    @Test func `other control characters in a value are kept`() {
        #expect(configProblems("banner", .object(["line\n": .string("tab\there\u{1}")])).isEmpty)
    }

    @Test func `a bad key and a bad value are both reported`() {
        let large = ConfigValue.string(String(repeating: "x", count: 5000))
        #expect(configProblems("Bad Key", large).map(\.field) == ["key", "value"])
    }
}
