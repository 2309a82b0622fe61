import Testing
@testable import Database

@Suite struct SQLScriptTests {
    @Test func `statements are split on semicolons outside quotes, dollar bodies and comments`() {
        let sql = """
            -- a comment; with a semicolon
            CREATE TABLE a (x text DEFAULT 'semi;colon', "we;ird" int);
            /* block; /* nested; */ still comment; */
            CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $body$
            BEGIN
              RAISE NOTICE 'a;b';
              RETURN 1;
            END
            $body$;
            DO $$ BEGIN PERFORM 1; END $$;
            SELECT E'it\\'s; fine', 'it''s; fine';
            -- trailing comment only
            """
        let statements = SQLScript.statements(in: sql)
        #expect(statements.count == 4)
        #expect(statements[0].hasSuffix("\"we;ird\" int)"))
        #expect(statements[1].contains("RAISE NOTICE 'a;b';"))
        #expect(statements[1].hasSuffix("$body$"))
        #expect(statements[2] == "DO $$ BEGIN PERFORM 1; END $$")
        #expect(statements[3] == "SELECT E'it\\'s; fine', 'it''s; fine'")
    }

    @Test func `positional parameters are not taken for dollar quotes`() {
        let statements = SQLScript.statements(in: "SELECT $1; SELECT $2")
        #expect(statements == ["SELECT $1", "SELECT $2"])
    }

    @Test func `the embedded schema splits into statements and names its files in order`() throws {
        let migrations = try Migration.schema()
        #expect(!migrations.isEmpty)
        #expect(migrations.map(\.version) == migrations.map(\.version).sorted())
        for migration in migrations {
            #expect(!SQLScript.statements(in: migration.sql).isEmpty, "\(migration.name) has no statements")
        }
    }
}
