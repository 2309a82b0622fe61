import Foundation

/// The analytics report as flat tables, for spreadsheets (CSV) and pipelines (NDJSON).
public enum AnalyticsExport {
    public enum Table: String, CaseIterable, Sendable {
        /// One row per tenant: its figures over the range.
        case tenants
        /// One row per tenant and day with activity.
        case daily
        /// One row per tenant and species.
        case species
    }

    public enum Format: String, CaseIterable, Sendable {
        case csv, ndjson
    }

    public enum Cell: Sendable, Equatable {
        case text(String)
        case number(Int64)
    }

    public static func columns(_ table: Table) -> [String] {
        switch table {
        case .tenants:
            ["tenant_id", "slug", "name", "plan", "status", "active_pets", "removed_pets", "commands", "events",
             "rate_limited_requests", "cross_tenant_attempts", "from", "to"]
        case .daily:
            ["tenant_id", "slug", "day", "commands", "events", "rate_limited_requests", "cross_tenant_attempts"]
        case .species:
            ["tenant_id", "slug", "species", "active", "removed"]
        }
    }

    public static func rows(_ table: Table, of report: AnalyticsReport) -> [[Cell]] {
        switch table {
        case .tenants:
            report.tenants.map { t in
                [.text(t.id), .text(t.slug), .text(t.name), .text(t.plan), .text(t.status), .number(t.pets.active), .number(t.pets.removed),
                 .number(t.commands), .number(t.events), .number(t.rateLimitedRequests), .number(t.crossTenantAttempts),
                 .text(report.from), .text(report.to)]
            }
        case .daily:
            report.tenants.flatMap { t in
                t.daily.map { d in
                    [.text(t.id), .text(t.slug), .text(d.day), .number(d.commands), .number(d.events), .number(d.rateLimitedRequests),
                     .number(d.crossTenantAttempts)]
                }
            }
        case .species:
            report.tenants.flatMap { t in
                t.petsBySpecies.map { s in [.text(t.id), .text(t.slug), .text(s.species), .number(s.active), .number(s.removed)] }
            }
        }
    }

    /// The whole table in `format`, each line ending in a newline (CSV: CRLF, as RFC 4180 has it).
    public static func render(_ table: Table, of report: AnalyticsReport, as format: Format) -> String {
        let columns = columns(table)
        let rows = rows(table, of: report)
        switch format {
        case .csv:
            var text = columns.joined(separator: ",") + "\r\n"
            for row in rows { text += row.map(csv).joined(separator: ",") + "\r\n" }
            return text
        case .ndjson:
            var text = ""
            for row in rows {
                text += "{" + zip(columns, row).map { "\(json($0)):\(json($1))" }.joined(separator: ",") + "}\n"
            }
            return text
        }
    }

    /// RFC 4180 quoting. Text a spreadsheet would run as a formula (a species named "=HYPERLINK(…)"
    /// is a tenant's input) gets a leading apostrophe, as OWASP advises for CSV exports.
    static func csv(_ cell: Cell) -> String {
        switch cell {
        case .number(let value):
            return String(value)
        case .text(var value):
            if let first = value.unicodeScalars.first, "=+-@\t\r".unicodeScalars.contains(first) { value = "'" + value }
            guard value.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return value }
            return "\"" + value.replacingOccurrences(of: "\"", with: "\"\"") + "\""
        }
    }

    static func json(_ cell: Cell) -> String {
        switch cell {
        case .number(let value): String(value)
        case .text(let value): json(value)
        }
    }

    static func json(_ text: String) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        return (try? encoder.encode(text)).map { String(decoding: $0, as: UTF8.self) } ?? "\"\""
    }
}
