import Testing
@testable import Projectors

@Suite struct DefinitionTests {
    @Test func `each projection file names its tables and has a content-hash version`() {
        let pets = ProjectionDefinition.named("pets")
        #expect(pets?.tables == ["pets"])
        #expect(ProjectionDefinition.named("tenant_config")?.tables == ["tenant_config"])
        #expect(pets?.version.count == 12)
        let edited = ProjectionDefinition(name: "pets", sql: (pets?.sql ?? "") + "\n-- edited")
        #expect(edited.version != pets?.version, "any change to the file is a new version")
        #expect(edited.schemaName == "proj_pets_\(edited.version)")
    }
}
