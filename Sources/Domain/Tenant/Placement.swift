/// Where a tenant's data lives: the shared tables, its own schema, or its own database.
public enum Placement: String, Sendable, Codable, CaseIterable {
    case shared, schema, database
}
