import Testing
@testable import Database

@Suite struct DatabaseURLTests {
    @Test func `a full URL is parsed into its parts`() throws {
        let url = try DatabaseURL("postgres://alice:s%40cret@db.example:6543/shop?sslmode=require")
        #expect(url.host == "db.example")
        #expect(url.port == 6543)
        #expect(url.username == "alice")
        #expect(url.password == "s@cret")
        #expect(url.database == "shop")
        #expect(url.tls == .require)
    }

    @Test func `the port defaults to 5432 and the password is optional`() throws {
        let url = try DatabaseURL("postgresql://bob@localhost/petstore")
        #expect(url.port == 5432)
        #expect(url.password == nil)
        #expect(url.tls == .disable)
    }

    @Test(arguments: [
        "", "localhost:5432", "mysql://u@h/db", "postgres://h/db", "postgres://u@/db", "postgres://u@h", "postgres://u@h/",
        "postgres://u@h:99999/db", "postgres://u@h/db?sslmode=sometimes", "postgres://u@h/db?foo=bar", "postgres://u@h/a/b",
    ])
    func `a malformed URL is refused with one readable line`(raw: String) {
        #expect {
            try DatabaseURL(raw)
        } throws: { error in
            guard let error = error as? DatabaseError else { return false }
            return error.code == .invalidURL && error.message.hasPrefix("DATABASE_URL is not valid") && !error.message.contains("\n")
        }
    }

    @Test func `the description masks the password`() throws {
        let url = try DatabaseURL("postgres://alice:hunter2@h:5432/db")
        #expect(!url.description.contains("hunter2"))
        #expect(url.description.contains("****"))
        #expect(url.connectionString.contains("hunter2"))
    }
}
