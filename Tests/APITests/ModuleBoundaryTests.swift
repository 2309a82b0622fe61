import Foundation
import Testing

/// The layering of Sources/README.md, checked on the sources themselves.
@Suite struct ModuleBoundaryTests {
    static let sources = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appending(path: "Sources")

    static func swiftFiles(in module: String) throws -> [(name: String, text: String)] {
        let root = sources.appending(path: module)
        guard let walker = FileManager.default.enumerator(at: root, includingPropertiesForKeys: nil) else { return [] }
        return try walker.compactMap { $0 as? URL }.filter { $0.pathExtension == "swift" }.map {
            (String($0.path.dropFirst(root.path.count + 1)), try String(contentsOf: $0, encoding: .utf8))
        }
    }

    @Test func `the HTTP layer imports no database driver`() throws {
        let files = try Self.swiftFiles(in: "API")
        #expect(files.count > 20, "the API sources were found")
        let offenders = files.filter { file in
            file.text.split(separator: "\n").contains { $0.range(of: #"^\s*(@testable\s+)?import\s+PostgresNIO\b"#, options: .regularExpression) != nil }
        }
        #expect(offenders.map(\.name).isEmpty, "these files under Sources/API import PostgresNIO: \(offenders.map(\.name))")
    }

    @Test func `only the tenant session enters a tenant`() throws {
        var entering: [String] = []
        for module in ["Database", "EventLog", "Tenancy", "Projectors", "Operations", "API", "petstore"] {
            for file in try Self.swiftFiles(in: module) where file.text.contains("'app.tenant_id'") {
                entering.append("\(module)/\(file.name)")
            }
        }
        #expect(entering == ["Database/TenantSession.swift"])
    }
}
