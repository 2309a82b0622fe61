import API
import ArgumentParser
import Crypto
import Database
import Domain
import EventLog
import Foundation
import Logging
import Operations
import PostgresNIO
import Projectors
import Tenancy

#if canImport(Glibc)
import Glibc
#endif

struct AuditCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit",
        abstract: "Export a tenant's history with its signed checkpoint, and verify exports and live logs.",
        subcommands: [Export.self, Verify.self, Replay.self, State.self]
    )

    struct Replay: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Load a verified export into a database that does not hold the tenant, then rebuild its read models."
        )
        @Argument(help: "An export file.") var file: String
        @Option(help: "postgres://… of the target database (its schema owner); migrated first.") var into: String
        @Option(name: .customLong("log-level"), help: "trace … critical (default: error)") var logLevel: String = "error"

        func run() async throws {
            var logger = Logger(label: "petstore")
            logger.logLevel = Logger.Level(rawValue: logLevel) ?? .error
            let target = try DatabaseURL(into)
            // The whole file is checked before anything is written.
            let lines = try Self.lines(of: file)
            var verifier = ExportVerifier()
            let report: ExportVerifier.Report
            do throws(ExportVerifier.Failure) {
                for line in lines { try verifier.feed(line) }
                report = try verifier.finish()
            } catch {
                print("FAILED: \(error); nothing was imported")
                throw ExitCode(1)
            }
            let tenant = report.tenant
            var events: [RecordedEvent] = []
            for line in lines.dropFirst() {
                if let event = try ExportVerifier.event(line: line, tenant: tenant) { events.append(event) }
            }
            guard events.first?.seq == 1 else {
                print("FAILED: the export starts at seq \(events.first?.seq ?? 0); only a whole log (from seq 1) can be replayed")
                throw ExitCode(1)
            }
            var tenantEvents: [TenantEvent] = []
            // The subjects' keys do not travel with an export: sealed personal fields read as erased.
            for event in try PersonalData.open(events.filter { $0.stream.type == Catalog.tenantStreamType }) {
                tenantEvents.append(try TenantEventCoding.decode(event))
            }

            let migrator = try Migrator()
            try await migrator.migrate(target, logger: logger)
            try await ProjectionInstaller().install(target, logger: logger)
            let client = PostgresClient(configuration: target.clientConfiguration(maximumConnections: 4), backgroundLogger: logger)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { await client.run() }
                defer { group.cancelAll() }
                let dependencies = AppDependencies(client: client, migrator: migrator, rateLimits: nil, metricsEnabled: false, logger: logger)
                if try await dependencies.catalog.tenant(id: tenant) != nil {
                    print("FAILED: the target already holds tenant \(tenant.description); nothing was imported")
                    throw ExitCode(1)
                }
                // One transaction: the catalog rows, the events and the head, or nothing.
                try await dependencies.store.database.withTenant(tenant) { session in
                    try await dependencies.catalog.restore(events: tenantEvents, in: session)
                    try await EventStore.restore(events, in: session)
                }
                for name in ["pets", "tenant_config", "analytics"] { try await dependencies.runtime.rebuild(name, tenant: tenant) { _, _ in } }
                let check = try await dependencies.store.verify(tenant: tenant)
                guard check.valid else {
                    print("FAILED: the imported log does not verify at seq \(check.firstBadSeq ?? 0): \(check.reason ?? "")")
                    throw ExitCode(1)
                }
                print("replayed \(events.count) events of tenant \(tenant.description) into \(target); read models rebuilt")
            }
        }

        static func lines(of path: String) throws -> [[UInt8]] {
            guard let data = FileManager.default.contents(atPath: path) else { throw ValidationError("cannot read \(path)") }
            return data.split(separator: 0x0A, omittingEmptySubsequences: true).map { Array($0) }
        }
    }

    struct State: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print a tenant's pets and configuration as they were at a time, folded from its log."
        )
        @OptionGroup var options: CommonOptions
        @Option(help: "The tenant's slug.") var tenant: String
        @Option(help: "An RFC 3339 time, not in the future.") var at: String

        func run() async throws {
            guard let time = Timestamps.parse(at) else { throw ValidationError("--at must be an RFC 3339 time such as 2026-01-31T12:00:00Z") }
            guard Timestamps.acceptedRange.contains(time) else { throw ValidationError("--at must lie from \(Timestamps.acceptedRangeText)") }
            guard time <= Date() else { throw ValidationError("--at is in the future") }
            let slug = tenant
            let text = try await options.withDependencies { dependencies -> String in
                guard let record = try await dependencies.catalog.tenant(slug: slug) else { throw ValidationError("no tenant with slug '\(slug)'") }
                let store = dependencies.catalog.handle(for: record).store
                var pets: [UUID: [PetEvent]] = [:]
                var config: [TenantConfigEvent] = []
                var last: Int64 = 0
                while true {
                    let page = try await store.read(tenant: record.id, until: time, after: last, limit: 2000)
                    for event in page {
                        switch event.stream.type {
                        case PetEventCoding.streamType: pets[event.stream.id, default: []].append(try PetEventCoding.decode(event))
                        case ConfigEventCoding.streamType: config.append(try ConfigEventCoding.decode(event))
                        default: break
                        }
                    }
                    guard let end = page.last?.seq, page.count == 2000 else {
                        last = page.last?.seq ?? last
                        break
                    }
                    last = end
                }
                var lines = ["tenant \(record.slug) at \(Timestamps.format(time)) (log up to seq \(last))", "", "pets:",
                             "id\tname\tspecies\tbreed\tmicrochip_id\tremoved\tversion"]
                let states = pets.values.compactMap { Pet.fold($0) }.sorted { ($0.createdAt, $0.id.uuidString) < ($1.createdAt, $1.id.uuidString) }
                for pet in states {
                    lines.append([pet.id.uuidString.lowercased(), pet.name, pet.species, pet.breed ?? "-", pet.microchipID ?? "-",
                                  pet.removed ? "removed" : "-", String(pet.version)].joined(separator: "\t"))
                }
                lines += ["", "config:", "key\tvalue"]
                var values = TenantConfig.defaults
                for (key, value) in TenantConfig.fold(config).values { values[key] = value }
                for key in values.keys.sorted() {
                    let json = String(decoding: try TenantConfigProjector.valueEncoder.encode(values[key]!), as: UTF8.self)
                    lines.append("\(key)\t\(json)")
                }
                return lines.joined(separator: "\n")
            }
            print(text)
        }
    }

    struct Export: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write a tenant's events and its latest signed checkpoint to an NDJSON file."
        )
        @OptionGroup var options: CommonOptions
        @Option(help: "The tenant's slug.") var tenant: String
        @Option(help: "Only events recorded at or after this RFC 3339 time.") var from: String?
        @Option(help: "Only events recorded before this RFC 3339 time.") var to: String?
        @Option(help: "The file to write (replaced only once the export is whole).") var out: String
        @Option(name: .customLong("signing-key-file"), help: "The checkpoint signing key. (env: SIGNING_KEY_FILE, default: <data-dir>/signing-key)")
        var signingKeyFile: String?

        func validate() throws {
            let (start, end) = try times()
            if let start, let end, start > end { throw ValidationError("the time range is reversed: --from is after --to") }
        }

        func times() throws -> (Date?, Date?) {
            func parse(_ text: String?, _ name: String) throws -> Date? {
                guard let text else { return nil }
                guard let date = Timestamps.parse(text) else { throw ValidationError("--\(name) must be an RFC 3339 time such as 2026-01-31T12:00:00Z") }
                guard Timestamps.acceptedRange.contains(date) else { throw ValidationError("--\(name) must lie from \(Timestamps.acceptedRangeText)") }
                return date
            }
            return (try parse(from, "from"), try parse(to, "to"))
        }

        func run() async throws {
            let (start, end) = try times()
            let slug = tenant
            let destination = URL(fileURLWithPath: out)
            let signer = try options.signer(file: signingKeyFile)
            let progress = ProgressBar(label: "exporting \(slug)")
            let summary = try await options.withDependencies { dependencies -> String in
                try await Self.write(slug: slug, dependencies: dependencies, signer: signer, to: destination, from: start, to: end, progress: progress)
            }
            progress.finish()
            print(summary)
        }

        /// Writes the tenant's events (within `start`..<`end`) and the newest checkpoint they
        /// reach to `destination`, which appears only once whole; returns a line saying what.
        static func write(slug: String, dependencies: AppDependencies, signer: CheckpointSigner, to destination: URL,
                          from start: Date? = nil, to end: Date? = nil, progress: ProgressBar) async throws -> String {
            guard let record = try await dependencies.catalog.tenant(slug: slug) else { throw ValidationError("no tenant with slug '\(slug)'") }
            let store = dependencies.catalog.handle(for: record).store
            // A checkpoint of the head as it is now, so that a full export is covered to its end.
            _ = try await store.checkpoint(tenant: record.id, signer: signer)
            let head = try await store.tenantHeads()[record.id] ?? 0
            let partial = destination.deletingLastPathComponent().appending(path: ".\(destination.lastPathComponent).partial")
            guard FileManager.default.createFile(atPath: partial.path, contents: nil) else {
                throw ValidationError("cannot write \(partial.path)")
            }
            let file = try FileHandle(forWritingTo: partial)
            var buffer = ExportFormat.header(tenant: record.id, slug: record.slug, exportedAt: Date())
            buffer.append(0x0A)
            var written = 0
            var last: Int64 = 0
            do {
                for try await event in store.events(tenant: record.id, pageSize: 2000) {
                    if let end, event.recordedAt >= end { break }
                    if let start, event.recordedAt < start { continue }
                    buffer.append(contentsOf: ExportFormat.line(event))
                    buffer.append(0x0A)
                    written += 1
                    last = event.seq
                    if buffer.count >= 1 << 20 {
                        try file.write(contentsOf: buffer)
                        buffer.removeAll(keepingCapacity: true)
                        progress.update(Int(event.seq), of: Int(head))
                    }
                }
                guard written > 0 else { throw ValidationError("no events of \(slug) fall in that time range") }
                // The newest checkpoint the exported events reach: the one just signed for a
                // full export, an earlier one for a range that ends before the head.
                guard let checkpoint = try await store.checkpoints(tenant: record.id, limit: 1000).first(where: { $0.seq <= last }) else {
                    throw ValidationError("no signed checkpoint falls within the exported events; export up to a later time")
                }
                buffer.append(contentsOf: ExportFormat.trailer(checkpoint, publicKey: signer.publicKey))
                buffer.append(0x0A)
                try file.write(contentsOf: buffer)
                try file.close()
                _ = try? FileManager.default.removeItem(at: destination)
                try FileManager.default.moveItem(at: partial, to: destination)
                return "exported \(written) events of \(slug) to \(destination.path); checkpoint at seq \(checkpoint.seq), key \(checkpoint.keyID)"
            } catch {
                try? file.close()
                try? FileManager.default.removeItem(at: partial)
                throw error
            }
        }
    }

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Verify an export file offline (chain and signature), or a live log; exit 0 only when everything verifies."
        )
        @OptionGroup var options: CommonOptions
        @Argument(help: "An export file; checked with no database.") var file: String?
        @Option(help: "Verify this tenant's live log instead.") var tenant: String?
        @Flag(help: "Verify every tenant's live log.") var all = false
        @Option(name: .customLong("public-key"), help: "The platform's public key (base64 of the 32 raw bytes) the export must be signed with.")
        var publicKey: String?

        func validate() throws {
            let chosen = [file != nil, tenant != nil, all].filter { $0 }.count
            guard chosen == 1 else { throw ValidationError("give one of: an export FILE, --tenant SLUG or --all") }
        }

        func run() async throws {
            if let file {
                try verifyFile(file)
                return
            }
            let (slug, all) = (tenant, all)
            let failures = try await options.withDependencies { dependencies -> Int in
                var records: [TenantRecord] = []
                if let slug {
                    guard let record = try await dependencies.catalog.tenant(slug: slug) else { throw ValidationError("no tenant with slug '\(slug)'") }
                    records = [record]
                } else if all {
                    var after: String?
                    while true {
                        let page = try await dependencies.catalog.tenants(after: after, limit: 500)
                        records += page
                        guard page.count == 500, let last = page.last else { break }
                        after = last.slug
                    }
                }
                var failures = 0
                for record in records {
                    let store = dependencies.catalog.handle(for: record).store
                    let chain = try await store.verify(tenant: record.id)
                    var verdict = chain.valid ? "ok: \(chain.checked) events, head \(chain.headHash.hexString.prefix(16))" : "FAILED at seq \(chain.firstBadSeq ?? 0): \(chain.reason ?? "")"
                    var failed = !chain.valid
                    if chain.valid, let latest = try await store.checkpoints(tenant: record.id, limit: 1).first {
                        let check = latest.check(hashAtSeq: try await store.hash(tenant: record.id, seq: latest.seq))
                        if check != .consistent {
                            failed = true
                            verdict = "FAILED at seq \(check == .truncated ? min(chain.headSeq + 1, latest.seq) : latest.seq): the log is \(check.rawValue) against the checkpoint at seq \(latest.seq)"
                        } else {
                            verdict += ", checkpoint at seq \(latest.seq) consistent"
                        }
                    }
                    print("\(record.slug)\t\(verdict)")
                    if failed { failures += 1 }
                }
                return failures
            }
            if failures > 0 { throw ExitCode(1) }
        }

        func verifyFile(_ path: String) throws {
            var pinned: Curve25519.Signing.PublicKey?
            if let publicKey {
                guard let raw = Data(base64Encoded: publicKey), let key = try? Curve25519.Signing.PublicKey(rawRepresentation: raw) else {
                    throw ValidationError("--public-key must be the base64 of a 32-byte Ed25519 public key")
                }
                pinned = key
            }
            guard let handle = FileHandle(forReadingAtPath: path) else { throw ValidationError("cannot read \(path)") }
            defer { try? handle.close() }
            var verifier = ExportVerifier(pinnedKey: pinned)
            var pending: [UInt8] = []
            do {
                while let chunk = try handle.read(upToCount: 1 << 20), !chunk.isEmpty {
                    pending.append(contentsOf: chunk)
                    var start = 0
                    while let newline = pending[start...].firstIndex(of: 0x0A) {
                        if newline > start { try verifier.feed(pending[start..<newline]) }
                        start = newline + 1
                    }
                    pending.removeFirst(start)
                }
                if !pending.isEmpty { try verifier.feed(pending) }
                let report = try verifier.finish()
                let range = report.firstSeq.map { "seq \($0)…\(report.lastSeq ?? $0)" } ?? "no events"
                print("ok: \(report.events) events (\(range)) of tenant \(report.tenant.description); "
                      + "checkpoint at seq \(report.checkpointSeq) signed by key \(report.keyID)")
            } catch let failure as ExportVerifier.Failure {
                print("FAILED: \(failure)")
                throw ExitCode(1)
            }
        }
    }
}
