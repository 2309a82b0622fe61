import Foundation

// Usage: EmbedSQL <output.swift> <enum name> <file.sql>...
// Writes a Swift file with an enum holding each SQL file's name and text, sorted by name.
let arguments = CommandLine.arguments.dropFirst()
guard arguments.count >= 2 else {
    FileHandle.standardError.write(Data("usage: EmbedSQL OUTPUT ENUM [FILE.sql ...]\n".utf8))
    exit(64)
}
let output = URL(fileURLWithPath: arguments[arguments.startIndex])
let enumName = arguments[arguments.startIndex + 1]
let inputs = arguments.dropFirst(2).map { URL(fileURLWithPath: $0) }.sorted { $0.lastPathComponent < $1.lastPathComponent }

/// A raw string delimiter longer than any run of `#` in the text, so nothing inside can close it.
func rawDelimiter(for text: String) -> String {
    var longest = 0
    var current = 0
    for character in text {
        current = character == "#" ? current + 1 : 0
        longest = max(longest, current)
    }
    return String(repeating: "#", count: longest + 1)
}

var source = """
// Generated from the SQL files at build time. Do not edit.

package enum \(enumName) {
    package static let files: [(name: String, sql: String)] = [

"""
for input in inputs {
    let text = try String(contentsOf: input, encoding: .utf8)
    let hashes = rawDelimiter(for: text)
    source += "        (name: \(String(reflecting: input.lastPathComponent)), sql: \(hashes)\"\"\"\n\(text)\n\"\"\"\(hashes)),\n"
}
source += "    ]\n}\n"
try source.write(to: output, atomically: true, encoding: .utf8)
