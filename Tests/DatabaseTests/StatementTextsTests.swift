import PostgresNIO
import Testing
@testable import Database

@Suite struct StatementTextsTests {
    struct Probe: TenantFunction {
        static let name = "probe_rows"
        static let parameterTypes = ["bigint", "text"]
        typealias Row = Int64
        func bind(into bindings: inout PostgresBindings) {}
        func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Int64.self) }
    }

    /// What PostgresNIO reads on every execution, through the protocol as it does.
    func texts<Statement: PostgresPreparedStatement>(_ type: Statement.Type) -> (String, String) { (Statement.name, Statement.sql) }

    @Test func `the generic tenant calls are named after their function, not their type`() {
        let (name, sql) = texts(TenantCall<Probe>.self)
        #expect(name == "tenant_call probe_rows")
        #expect(sql == "SELECT * FROM probe_rows($1::uuid, $2::bigint, $3::text)")
        #expect(texts(EnteredTenantCall<Probe>.self).0 == "entered_tenant_call probe_rows")
        #expect(texts(EnteredHomeCall<Probe>.self).0 == "entered_home_call probe_rows")
        #expect(texts(EnteredHomeCall<Probe>.self).1.hasSuffix("LATERAL probe_rows(entered.tenant::uuid, $4::bigint, $5::text) AS called"))
    }
}
