import Database
import Domain
import Foundation
import PetstoreTesting
import PostgresNIO
import Testing
@testable import API

/// The direct writer answers byte for byte what `JSONResponse.encoder` would.
@Suite struct JSONWriterTests {
    static let pets = [
        PetState(id: UUID(), name: "Rex \"the\" Dog \\ ünïcode / slash", species: "dog", breed: nil, microchipID: "123456789", removed: false,
                 createdAt: Date(timeIntervalSince1970: 1_795_000_000.123456), updatedAt: Date(timeIntervalSince1970: 1_795_000_100), version: 3,
                 microchipRegisteredAt: Date(timeIntervalSince1970: 1_795_000_050.000001)),
        PetState(id: UUID(), name: "Tab\tand\nnewline", species: "cat", breed: "Siamese", microchipID: nil, removed: true,
                 createdAt: Date(timeIntervalSince1970: 0), updatedAt: Date(timeIntervalSince1970: 4_102_444_799.999999), version: 1),
    ]

    func written(_ value: some JSONWritable) -> String {
        var writer = JSONWriter()
        value.write(to: &writer)
        return String(decoding: writer.bytes, as: UTF8.self)
    }

    func encoded(_ value: some Encodable) throws -> String {
        String(decoding: try JSONResponse.encoder.encode(value), as: UTF8.self)
    }

    @Test func `a pet is written as the encoder writes it`() throws {
        for pet in Self.pets {
            #expect(written(PetRoutes.PetBody(pet)) == (try encoded(PetRoutes.PetBody(pet))))
        }
    }

    @Test func `a page of pets, with and without a next cursor, is written as the encoder writes it`() throws {
        let items = Self.pets.map(PetRoutes.PetBody.init)
        for page in [ListPage(items: items, nextCursor: "MTIz"), ListPage(items: items, nextCursor: nil), ListPage(items: [], nextCursor: nil)] {
            #expect(written(page) == (try encoded(page)))
        }
    }

    /// The list's items are written by PostgreSQL (`pet_json`, Schema/0020): the same bytes as
    /// the writer's, for names that need escaping, non-ASCII text, nulls and odd times.
    @Test func `the database writes a pet as the writer writes it`() async throws {
        let database = try await TestCluster.shared.database()
        let pets = Self.pets + [
            PetState(id: UUID(), name: "\u{1}ctl \u{1F}\u{7F} 🐕 日本語 '; DROP TABLE pets; --", species: "a\\b\"c", breed: "</script>",
                     microchipID: "", removed: false, createdAt: Date(timeIntervalSince1970: 1_795_000_000.5),
                     updatedAt: Date(timeIntervalSince1970: 1_795_000_000.000_001), version: 2_000_000_000),
        ]
        let fromDatabase = try await database.ownerURL.withConnection(logger: TestCluster.logger) { connection in
            var texts: [String] = []
            for pet in pets {
                let rows = try await connection.query("""
                    SELECT pet_json(\(pet.id), \(pet.name), \(pet.species), \(pet.breed), \(pet.microchipID),
                                    \(pet.microchipRegisteredAt), \(pet.removed), \(pet.createdAt), \(pet.updatedAt), \(Int32(pet.version)))
                    """, logger: TestCluster.logger)
                for try await text in rows.decode(String.self) { texts.append(text) }
            }
            return texts
        }
        #expect(fromDatabase == pets.map { written(PetRoutes.PetBody($0)) })
    }
}
