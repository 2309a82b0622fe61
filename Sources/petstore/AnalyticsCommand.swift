import API
import ArgumentParser
import Foundation
import Operations
import Operations

struct AnalyticsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "analytics",
        abstract: "Cross-tenant analytics for platform admins.",
        subcommands: [Export.self]
    )

    struct Export: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write the analytics as CSV or NDJSON: per tenant, per tenant and day, or per tenant and species."
        )
        @OptionGroup var options: CommonOptions
        @Option(help: "csv or ndjson.") var format: String
        @Option(help: "tenants (figures over the range), daily (per tenant and day) or species (pets by species).")
        var table: String = AnalyticsExport.Table.tenants.rawValue
        @Option(help: "First UTC day, YYYY-MM-DD (default: 29 days before --to).") var from: String?
        @Option(help: "Last UTC day, YYYY-MM-DD (default: today).") var to: String?
        @Option(help: "Only this tenant's rows.") var tenant: String?
        @Option(help: "The file to write (replaced only once whole); standard output when absent.") var out: String?

        func validate() throws {
            _ = try parsed()
        }

        func parsed() throws -> (AnalyticsExport.Format, AnalyticsExport.Table, AnalyticsRange) {
            guard let format = AnalyticsExport.Format(rawValue: format) else {
                throw ValidationError("--format must be one of \(AnalyticsExport.Format.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            guard let table = AnalyticsExport.Table(rawValue: table) else {
                throw ValidationError("--table must be one of \(AnalyticsExport.Table.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            do {
                return (format, table, try AnalyticsRange(from: from, to: to))
            } catch {
                throw ValidationError(error.description)
            }
        }

        func run() async throws {
            let (format, table, range) = try parsed()
            let slug = tenant
            let report = try await options.withDependencies { dependencies in
                // No server may be running: bring the figures up to the logs first.
                try await dependencies.runtime.catchUpAll(only: "analytics")
                do {
                    return try await dependencies.analyticsReport(range: range, tenant: slug)
                } catch let error as AnalyticsError {
                    throw CLIError(error.description)
                }
            }
            let text = AnalyticsExport.render(table, of: report, as: format)
            guard let out else {
                FileHandle.standardOutput.write(Data(text.utf8))
                return
            }
            let destination = URL(fileURLWithPath: out)
            let partial = destination.deletingLastPathComponent().appending(path: ".\(destination.lastPathComponent).partial")
            do {
                try Data(text.utf8).write(to: partial)
                _ = try? FileManager.default.removeItem(at: destination)
                try FileManager.default.moveItem(at: partial, to: destination)
            } catch {
                try? FileManager.default.removeItem(at: partial)
                throw CLIError("cannot write \(destination.path): \(error.localizedDescription)")
            }
            let rows = AnalyticsExport.rows(table, of: report).count
            FileHandle.standardError.write(Data("wrote \(rows) \(table.rawValue) rows (\(report.from) to \(report.to)) to \(destination.path)\n".utf8))
        }
    }
}
