import Domain
import Foundation
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
}
