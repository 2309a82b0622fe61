import Database
import Domain
import EventLog
import Operations
import Tenancy
import Testing
@testable import API

/// Every module error has its answer in ErrorMapping; anything else is left for the 500 path.
@Suite struct ErrorMappingTests {
    @Test func `every code of every module error maps to a problem, and only storage failures and unreachable servers to a 5xx`() {
        for code in DomainError.Code.allCases {
            let problem = ErrorMapping.problem(for: DomainError(code, "refused"))
            #expect(problem.map { (400..<500).contains($0.status.code) } == true, "DomainError.\(code)")
            // A tenant decider's refusal reaches HTTP in the catalog's terms: still the client's.
            let inCatalogTerms = ErrorMapping.problem(for: TenancyError(DomainError(code, "refused")))
            #expect(inCatalogTerms.map { (400..<500).contains($0.status.code) } == true, "TenancyError(DomainError.\(code))")
        }
        for code in TenancyError.Code.allCases {
            let problem = ErrorMapping.problem(for: TenancyError(code, "refused"))
            #expect(problem.map { (400..<500).contains($0.status.code) == (code != .storage && code != .unavailable) } == true, "TenancyError.\(code)")
        }
        for code in EventLogError.Code.allCases {
            let problem = ErrorMapping.problem(for: EventLogError(code, "refused", actualVersion: 3))
            #expect(problem.map { (400..<500).contains($0.status.code) == (code == .wrongExpectedVersion) } == true, "EventLogError.\(code)")
        }
        for code in DatabaseError.Code.allCases {
            #expect(ErrorMapping.problem(for: DatabaseError(code, "broken")) != nil, "DatabaseError.\(code)")
        }
        let others: [any Error] = [
            IdempotencyError.inUse, IdempotencyError.reused, AnalyticsError.notInstalled, AnalyticsError.unknownTenant("x"),
            AnalyticsRange.Failure.reversed, TenantResolver.Failure.conflicting, CancellationError(),
        ]
        for error in others { #expect(ErrorMapping.problem(for: error) != nil, "\(error)") }
    }

    @Test func `a storage failure that is only the database being away is a 503 with Retry-After`() {
        var error = EventLogError(.storage, "the event log could not be written or read")
        error.databaseFault = .unavailable
        let problem = ErrorMapping.problem(for: error)
        #expect(problem?.status == .serviceUnavailable && problem?.headers[.retryAfter] == "1")
    }

    @Test func `an error no module declares has no mapping`() {
        struct Surprise: Error {}
        #expect(ErrorMapping.problem(for: Surprise()) == nil)
    }

    @Test func `a stale If-Match is 412, and one for a stream that does not exist is 404`() {
        #expect(ErrorMapping.problem(for: EventLogError(.wrongExpectedVersion, "stale", actualVersion: 4))?.status == .preconditionFailed)
        #expect(ErrorMapping.problem(for: EventLogError(.wrongExpectedVersion, "gone", actualVersion: 0))?.status == .notFound)
    }

    @Test func `module errors keep their cause for the log and out of their description`() {
        let error = TenancyError.storage("the catalog could not be read", cause: DatabaseError(.unreachable, "cannot connect to 10.0.0.5"))
        #expect(error.description == "the catalog could not be read")
        #expect(String(reflecting: error).contains("10.0.0.5"))
    }
}
