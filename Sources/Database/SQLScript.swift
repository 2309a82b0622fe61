import Foundation

/// Splits a SQL file into statements, because the extended query protocol that every bound
/// query uses runs one statement at a time.
///
/// Understands what can hide a `;`: single-quoted strings (with `''`), `E'…'` strings with
/// backslash escapes, quoted identifiers, dollar-quoted bodies (`$$…$$`, `$tag$…$tag$`),
/// `--` line comments and nested `/* */` comments.
package enum SQLScript {
    package static func statements(in sql: String) -> [String] {
        let characters = Array(sql.unicodeScalars)
        var statements: [String] = []
        var current = String.UnicodeScalarView()
        var index = 0

        func flush() {
            let text = String(current).trimmingCharacters(in: .whitespacesAndNewlines)
            if !text.isEmpty, !isOnlyComments(text) { statements.append(text) }
            current = String.UnicodeScalarView()
        }

        while index < characters.count {
            let character = characters[index]
            let next: Unicode.Scalar? = index + 1 < characters.count ? characters[index + 1] : nil
            switch character {
            case "-" where next == "-":
                while index < characters.count, characters[index] != "\n" {
                    current.append(characters[index]); index += 1
                }
                continue
            case "/" where next == "*":
                var depth = 0
                repeat {
                    if characters[index] == "/", index + 1 < characters.count, characters[index + 1] == "*" {
                        depth += 1; current.append("/"); current.append("*"); index += 2
                    } else if characters[index] == "*", index + 1 < characters.count, characters[index + 1] == "/" {
                        depth -= 1; current.append("*"); current.append("/"); index += 2
                    } else {
                        current.append(characters[index]); index += 1
                    }
                } while depth > 0 && index < characters.count
                continue
            case "'", "\"":
                let escapes = character == "'" && index > 0 && (characters[index - 1] == "E" || characters[index - 1] == "e")
                current.append(character); index += 1
                while index < characters.count {
                    let inner = characters[index]
                    current.append(inner); index += 1
                    if escapes, inner == "\\", index < characters.count {
                        current.append(characters[index]); index += 1
                    } else if inner == character {
                        if index < characters.count, characters[index] == character {
                            current.append(characters[index]); index += 1
                        } else {
                            break
                        }
                    }
                }
                continue
            case "$":
                if let tag = dollarTag(characters, at: index) {
                    current.append(contentsOf: tag); index += tag.count
                    while index < characters.count {
                        if characters[index] == "$", matches(characters, at: index, tag) {
                            current.append(contentsOf: tag); index += tag.count
                            break
                        }
                        current.append(characters[index]); index += 1
                    }
                    continue
                }
            case ";":
                flush(); index += 1
                continue
            default:
                break
            }
            current.append(character); index += 1
        }
        flush()
        return statements
    }

    /// `$tag$` starting at `index`, where a tag is empty or an identifier not starting with a digit.
    private static func dollarTag(_ characters: [Unicode.Scalar], at index: Int) -> [Unicode.Scalar]? {
        if index > 0, characters[index - 1].properties.isAlphabetic || characters[index - 1] == "_" { return nil }
        var end = index + 1
        while end < characters.count, characters[end] == "_" || characters[end].properties.isAlphabetic
            || (end > index + 1 && ("0"..."9").contains(characters[end])) {
            end += 1
        }
        guard end < characters.count, characters[end] == "$" else { return nil }
        return Array(characters[index...end])
    }

    private static func matches(_ characters: [Unicode.Scalar], at index: Int, _ tag: [Unicode.Scalar]) -> Bool {
        index + tag.count <= characters.count && Array(characters[index..<(index + tag.count)]) == tag
    }

    private static func isOnlyComments(_ text: String) -> Bool {
        text.split(separator: "\n").allSatisfy { $0.trimmingCharacters(in: .whitespaces).hasPrefix("--") }
    }
}
