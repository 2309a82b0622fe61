import Domain
import Testing

/// Starts a given/when/then spec from the events a decider has already seen.
func given<D: Decider>(_ decider: D.Type, _ history: [D.Event] = []) -> Scenario<D> {
    Scenario(history: history)
}

/// A history waiting for its command.
struct Scenario<D: Decider> {
    let history: [D.Event]

    func when(_ command: D.Command) -> Decision<D> {
        let state = D.fold(history)
        do throws(DomainError) {
            return Decision(state: state, result: .success(try D.decide(command, state)))
        } catch {
            return Decision(state: state, result: .failure(error))
        }
    }
}

/// What `decide` answered, waiting for the expectation.
struct Decision<D: Decider> {
    let state: D.State
    let result: Result<[D.Event], DomainError>

    /// Expects exactly `expected` and returns the state they lead to.
    @discardableResult
    func then(_ expected: [D.Event], sourceLocation: SourceLocation = #_sourceLocation) -> D.State where D.Event: Equatable {
        switch result {
        case .success(let events):
            #expect(events == expected, sourceLocation: sourceLocation)
            return D.fold(events, from: state)
        case .failure(let error):
            Issue.record("expected \(expected), but decide threw \(error.code): \(error.message)", sourceLocation: sourceLocation)
            return state
        }
    }

    /// Expects a refusal with `code` and returns the error for closer looks.
    @discardableResult
    func thenThrows(_ code: DomainError.Code, sourceLocation: SourceLocation = #_sourceLocation) -> DomainError? {
        switch result {
        case .success(let events):
            Issue.record("expected a \(code) error, but decide returned \(events)", sourceLocation: sourceLocation)
            return nil
        case .failure(let error):
            #expect(error.code == code, sourceLocation: sourceLocation)
            return error
        }
    }

    /// Expects a validation error naming exactly `fields`, in order.
    func thenRejects(_ fields: [String], sourceLocation: SourceLocation = #_sourceLocation) {
        let error = thenThrows(.validation, sourceLocation: sourceLocation)
        #expect(error?.fieldErrors.map(\.field) == fields, sourceLocation: sourceLocation)
    }
}
