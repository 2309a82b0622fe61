import Domain
import Testing

@Suite struct TenantConfigTests {
    typealias F = Fixture

    static let themeSet = TenantConfigEvent.set(ConfigValueSet(key: "ui.theme", value: .string("dark"), at: Fixture.start))

    @Test func `setting a value records it`() {
        let state = given(TenantConfig.self)
            .when(.set(key: "include_deleted_pets", value: .bool(true), at: F.start))
            .then([.set(ConfigValueSet(key: "include_deleted_pets", value: .bool(true), at: F.start))])
        #expect(state.values == ["include_deleted_pets": .bool(true)])
    }

    @Test func `setting the same value again is a no-op`() {
        given(TenantConfig.self, [Self.themeSet]).when(.set(key: "ui.theme", value: .string("dark"), at: F.minute(1))).then([])
    }

    @Test func `setting a different value records it`() {
        given(TenantConfig.self, [Self.themeSet])
            .when(.set(key: "ui.theme", value: .string("light"), at: F.minute(1)))
            .then([.set(ConfigValueSet(key: "ui.theme", value: .string("light"), at: F.minute(1)))])
    }

    @Test func `explicitly setting a default value is recorded, because it pins the value`() {
        given(TenantConfig.self)
            .when(.set(key: "include_deleted_pets", value: .bool(false), at: F.start))
            .then([.set(ConfigValueSet(key: "include_deleted_pets", value: .bool(false), at: F.start))])
    }

    @Test func `unsetting a value records it`() {
        let state = given(TenantConfig.self, [Self.themeSet])
            .when(.unset(key: "ui.theme", at: F.minute(1)))
            .then([.unset(ConfigValueUnset(key: "ui.theme", at: F.minute(1)))])
        #expect(state.values.isEmpty)
    }

    @Test func `unsetting a missing key is a no-op`() {
        given(TenantConfig.self, [Self.themeSet]).when(.unset(key: "ui.font", at: F.minute(1))).then([])
    }

    @Test func `a malformed key is refused when setting and when unsetting`() {
        given(TenantConfig.self).when(.set(key: "UI-Theme", value: .string("dark"), at: F.start)).thenRejects(["key"])
        given(TenantConfig.self).when(.unset(key: "", at: F.start)).thenRejects(["key"])
    }

    @Test func `a wrongly typed known value is refused`() {
        given(TenantConfig.self).when(.set(key: "include_deleted_pets", value: .string("yes"), at: F.start)).thenRejects(["value"])
    }

    @Test func `an oversized unknown value is refused`() {
        let large = ConfigValue.string(String(repeating: "x", count: 5 * 1024))
        given(TenantConfig.self).when(.set(key: "banner", value: large, at: F.start)).thenRejects(["value"])
    }

    @Test func `the effective value falls back to the default`() {
        let empty = TenantConfig.initialState
        #expect(empty.effectiveValue("include_deleted_pets") == .bool(false))
        #expect(empty.effectiveValue("ui.theme") == nil)
        let own = TenantConfig.fold([.set(ConfigValueSet(key: "include_deleted_pets", value: .bool(true), at: F.start))])
        #expect(own.effectiveValue("include_deleted_pets") == .bool(true))
        let unset = TenantConfig.evolve(own, .unset(ConfigValueUnset(key: "include_deleted_pets", at: F.minute(1))))
        #expect(unset.effectiveValue("include_deleted_pets") == .bool(false))
    }

    @Test func `folding decided events reproduces the configuration`() throws {
        var events: [TenantConfigEvent] = []
        let commands: [TenantConfigCommand] = [
            .set(key: "a", value: .number(1), at: F.start),
            .set(key: "b", value: .array([.string("x")]), at: F.minute(1)),
            .set(key: "a", value: .number(1), at: F.minute(2)),
            .set(key: "a", value: .number(2), at: F.minute(3)),
            .unset(key: "b", at: F.minute(4)),
            .unset(key: "b", at: F.minute(5)),
        ]
        for command in commands {
            events += try TenantConfig.decide(command, TenantConfig.fold(events))
        }
        #expect(events.count == 4)
        #expect(TenantConfig.fold(events) == TenantConfigState(values: ["a": .number(2)]))
    }
}
