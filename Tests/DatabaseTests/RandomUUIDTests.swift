import Database
import Foundation
import Testing

@Suite struct RandomUUIDTests {
    @Test func `random UUIDs are version 4, RFC 4122 variant, and do not repeat`() {
        let ids = (0..<10_000).map { _ in UUID.random() }
        #expect(Set(ids).count == ids.count)
        for id in ids {
            let text = id.uuidString.lowercased()
            let characters = Array(text)
            #expect(characters[14] == "4", "version nibble of \(text)")
            #expect("89ab".contains(characters[19]), "variant of \(text)")
            #expect(UUID(uuidString: text) == id)
        }
        // Each of the 122 random bits takes both values somewhere in 10 000 draws.
        var seen = (ones: [UInt8](repeating: 0, count: 16), zeros: [UInt8](repeating: 0, count: 16))
        for id in ids {
            withUnsafeBytes(of: id.uuid) { raw in
                for index in 0..<16 { seen.ones[index] |= raw[index]; seen.zeros[index] |= ~raw[index] }
            }
        }
        let fixedOnes: [Int: UInt8] = [6: 0x40, 8: 0x80], fixedZeros: [Int: UInt8] = [6: 0xB0, 8: 0x40]
        for index in 0..<16 {
            #expect(seen.ones[index] == 0xFF & ~(fixedZeros[index] ?? 0), "byte \(index) ones")
            #expect(seen.zeros[index] == 0xFF & ~(fixedOnes[index] ?? 0), "byte \(index) zeros")
        }
    }
}
