import Domain
import Testing

/// The helper must be able to fail, or every spec built on it proves nothing.
@Suite struct ScenarioTests {
    @Test func `a spec expecting other events fails`() {
        withKnownIssue {
            given(Pet.self).when(Fixture.register()).then([])
        }
    }

    @Test func `a spec expecting events fails when decide throws`() {
        withKnownIssue {
            given(Pet.self, [Fixture.registered()]).when(Fixture.register()).then([Fixture.registered()])
        }
    }

    @Test func `a spec expecting an error fails when decide succeeds`() {
        withKnownIssue {
            given(Pet.self).when(Fixture.register()).thenThrows(.alreadyExists)
        }
    }

    @Test func `a spec expecting one error code fails on another`() {
        withKnownIssue {
            given(Pet.self).when(.remove(at: Fixture.start)).thenThrows(.alreadyExists)
        }
    }

    @Test func `a spec expecting some invalid fields fails when others are reported`() {
        withKnownIssue {
            given(Pet.self).when(Fixture.register(name: "")).thenRejects(["species"])
        }
    }

    @Test func `then returns the state the decided events lead to`() {
        let state = given(Pet.self).when(Fixture.register()).then([Fixture.registered()])
        #expect(state?.name == "Rex")
        #expect(state?.version == 1)
    }
}
