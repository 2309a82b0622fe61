import Database
import EventLog
import Foundation
import Logging
import PetstoreTesting
import PostgresNIO

struct PetNamed: EventPayload, Equatable {
    static let eventType = "PetNamed"
    static let schemaVersion = 2
    let name: String
    let nickname: String?
}

func named(_ name: String) throws -> NewEvent {
    try NewEvent(PetNamed(name: name, nickname: nil))
}

func pet(_ id: UUID = UUID()) throws -> StreamName {
    try StreamName(type: "pet", id: id)
}

/// A fresh database and an event store on the application's role.
func withStore<Result: Sendable>(
    maximumConnections: Int = 10,
    _ body: (EventStore, TestDatabase) async throws -> Result
) async throws -> Result {
    let database = try await TestCluster.shared.database()
    return try await database.withAppClient(maximumConnections: maximumConnections) { client in
        try await body(EventStore(client: client, logger: TestCluster.logger), database)
    }
}

/// Runs SQL as a superuser with triggers off, the way an intruder with table access would.
func tamper(_ database: TestDatabase, _ sql: String) async throws {
    try await database.superuserURL.withConnection(logger: TestCluster.logger) { connection in
        try await connection.execute("SET session_replication_role = replica", logger: TestCluster.logger)
        try await connection.execute(PostgresQuery(unsafeSQL: sql), logger: TestCluster.logger)
    }
}


