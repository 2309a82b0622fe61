import Foundation
import Logging
import Testing
@testable import Database

/// When a tenant's command joins a commit group: only once `queueToGroup` others of its tenant
/// are under way, and from then on until none is (GroupCommitTests shows the same end to end).
@Suite struct CommitGroupPolicyTests {
    let groups = CommitGroups(lanes: 4, logger: Logger(label: "tests"))
    let busy = TenantID(UUID())
    let quiet = TenantID(UUID())

    @Test func `a tenant's commands commit alone until enough are under way`() {
        let arrivals = (0...CommitGroups.queueToGroup).map { _ in groups.arrive(busy) }
        #expect(arrivals == Array(repeating: false, count: CommitGroups.queueToGroup) + [true])
        #expect(groups.arrive(quiet) == false, "another tenant's load does not make its commands join groups")
    }

    @Test func `once grouping, a tenant's commands keep joining groups until none is under way`() {
        for _ in 0...CommitGroups.queueToGroup { _ = groups.arrive(busy) }
        for _ in 0..<CommitGroups.queueToGroup { groups.leave(busy) }
        #expect(groups.arrive(busy), "one still under way: the next joins a group, not alone beside it")
        groups.leave(busy)
        groups.leave(busy)
        #expect(groups.arrive(busy) == false, "with none under way the tenant's next command commits alone")
    }
}
