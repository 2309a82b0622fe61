import Crypto
import Foundation
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// A private PostgreSQL cluster in a folder of ours, started from the server binaries on the machine.
///
/// Used by `petstore serve` when no `DATABASE_URL` is given, and by the tests. The layout is
///
///     <directory>/credentials.json   passwords of the roles below (0600, owned by the caller)
///     <directory>/postgres/data      the cluster (owned by the server's user)
///     <directory>/postgres/server.log
///
/// It listens on 127.0.0.1 only, on a free port picked at each start, with unix sockets off,
/// so two checkouts on one machine never collide. When the caller is root the server runs as the
/// `postgres` user, since PostgreSQL refuses to run as root. That user cannot reach a folder
/// under a parent closed to it (a checkout in root's 0700 home, the usual place), so then the
/// server's folder moves to one of its own under `/var/lib/petstore/`, named for the data folder,
/// and `<directory>/cluster-location` remembers where:
///
///     <directory>/cluster-location   the server's folder, when it is not <directory>/postgres
public struct LocalCluster: Sendable {
    /// The roles a cluster is bootstrapped with.
    public static let ownerRole = "petstore_owner"
    public static let appRole = "petstore_app"
    public static let databaseName = "petstore"

    public let directory: URL
    /// Settings written to `postgresql.conf` at initdb (tests turn fsync off, for instance).
    public let settings: [String: String]
    let logger: Logger

    public init(directory: URL, settings: [String: String] = [:], logger: Logger) {
        self.directory = directory.standardizedFileURL
        self.settings = settings
        self.logger = logger
    }

    /// Where clusters go whose data folder the server's user cannot reach.
    public static let relocatedRoot = URL(fileURLWithPath: "/var/lib/petstore")

    /// The server's own folder (owned by the server's user): remembered, or `<directory>/postgres`.
    public var serverDirectory: URL {
        if let remembered = try? String(contentsOf: locationFile, encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines), remembered.hasPrefix("/") {
            return URL(fileURLWithPath: remembered)
        }
        return directory.appending(path: "postgres")
    }

    var dataDirectory: URL { serverDirectory.appending(path: "data") }
    var logFile: URL { serverDirectory.appending(path: "server.log") }
    var credentialsFile: URL { directory.appending(path: "credentials.json") }
    var locationFile: URL { directory.appending(path: "cluster-location") }

    /// The folder a cluster moves to when its server's user cannot reach `directory`: one per
    /// data folder, named for its path, so two checkouts never share a cluster.
    var relocatedDirectory: URL {
        let digest = SHA256.hash(data: Data(directory.path.utf8)).prefix(6).map { String(format: "%02x", $0) }.joined()
        let name = directory.deletingLastPathComponent().lastPathComponent
            .filter { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }
            .prefix(40)
        return Self.relocatedRoot.appending(path: "\(name.isEmpty ? "cluster" : String(name))-\(digest)")
    }

    /// Initializes the cluster if needed, starts it unless it already runs, and makes sure the
    /// owner and application roles and the `petstore` database exist.
    public func start() async throws(DatabaseError) -> RunningCluster {
        let binaries = try PostgresBinaries.locate()
        let account = try ServerAccount.current()
        try prepareDirectories(account: account)
        let credentials = try Credentials.load(or: credentialsFile)

        if !FileManager.default.fileExists(atPath: dataDirectory.appending(path: "PG_VERSION").path) {
            try initialize(binaries: binaries, account: account, superuserPassword: credentials.superuserPassword)
        }

        let port: Int
        let startedHere: Bool
        if let running = try runningPort() {
            logger.info("reusing running local PostgreSQL", metadata: ["port": "\(running)"])
            (port, startedHere) = (running, false)
        } else {
            port = try launch(binaries: binaries, account: account)
            startedHere = true
        }

        let cluster = RunningCluster(
            cluster: self, binaries: binaries, account: account, port: port, credentials: credentials, startedHere: startedHere
        )
        do {
            try await cluster.bootstrapRoles()
        } catch {
            if startedHere { cluster.stop() }
            throw error
        }
        return cluster
    }

    // MARK: - Steps

    private func prepareDirectories(account: ServerAccount) throws(DatabaseError) {
        do {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        } catch {
            throw DatabaseError(.directoryNotUsable, "cannot create \(directory.path): \(Self.reason(error))")
        }
        guard FileManager.default.isWritableFile(atPath: directory.path) else {
            throw DatabaseError(.directoryNotUsable, "\(directory.path) is not writable")
        }
        let serverRoot = serverDirectory
        try makeServerDirectory(serverRoot, account: account)
        guard let user = account.runAs, !account.canReach(serverRoot) else { return }

        // The server's user cannot get through a parent folder. A cluster already there stays
        // (moving it is the operator's call); an empty folder moves somewhere the user can reach.
        if FileManager.default.fileExists(atPath: serverRoot.appending(path: "data/PG_VERSION").path)
            || serverRoot != directory.appending(path: "postgres") {
            throw DatabaseError(
                .directoryNotUsable,
                "user \(user.name) cannot reach \(serverRoot.path): a parent folder is closed to it; open it to that user, or use --data-dir (PETSTORE_DATA_DIR) to start a cluster elsewhere"
            )
        }
        try? FileManager.default.removeItem(at: serverRoot)
        let relocated = relocatedDirectory
        do {
            try FileManager.default.createDirectory(at: Self.relocatedRoot, withIntermediateDirectories: true)
            chmod(Self.relocatedRoot.path, 0o755)
        } catch {
            throw DatabaseError(.directoryNotUsable, "cannot create \(Self.relocatedRoot.path): \(Self.reason(error))")
        }
        try makeServerDirectory(relocated, account: account)
        guard account.canReach(relocated) else {
            throw DatabaseError(.directoryNotUsable, "user \(user.name) cannot reach \(relocated.path) either; use --data-dir (PETSTORE_DATA_DIR) to put the cluster elsewhere")
        }
        do {
            try Data((relocated.path + "\n").utf8).write(to: locationFile, options: .atomic)
        } catch {
            throw DatabaseError(.directoryNotUsable, "cannot write \(locationFile.path): \(Self.reason(error))")
        }
        logger.notice(
            "user \(user.name) cannot reach \(directory.path) (a parent folder is closed to it): the local PostgreSQL cluster lives in \(relocated.path), remembered in \(locationFile.path)"
        )
    }

    /// Creates the server's folder, owned by the server's user and closed to everyone else.
    private func makeServerDirectory(_ folder: URL, account: ServerAccount) throws(DatabaseError) {
        do {
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        } catch {
            throw DatabaseError(.directoryNotUsable, "cannot create \(folder.path): \(Self.reason(error))")
        }
        chmod(folder.path, 0o700)
        if let user = account.runAs, chown(folder.path, user.uid, user.gid) != 0 {
            throw DatabaseError(.directoryNotUsable, "cannot hand \(folder.path) to user \(user.name): \(String(cString: strerror(errno)))")
        }
    }

    private func initialize(binaries: PostgresBinaries, account: ServerAccount, superuserPassword: String) throws(DatabaseError) {
        logger.info("initializing local PostgreSQL cluster", metadata: ["directory": "\(dataDirectory.path)"])
        let passwordFile = serverDirectory.appending(path: ".initdb-password")
        do {
            try Data(superuserPassword.utf8).write(to: passwordFile)
            if let user = account.runAs { chown(passwordFile.path, user.uid, user.gid) }
            chmod(passwordFile.path, 0o600)
        } catch {
            throw DatabaseError(.directoryNotUsable, "cannot write \(passwordFile.path): \(Self.reason(error))")
        }
        defer { try? FileManager.default.removeItem(at: passwordFile) }
        let result = try Shell.run(account.command([
            binaries.path("initdb"), "-D", dataDirectory.path, "-U", "postgres", "--pwfile", passwordFile.path,
            "-E", "UTF8", "--locale", "C", "--auth-local", "peer", "--auth-host", "scram-sha-256", "--no-instructions",
        ]))
        guard result.status == 0 else {
            throw DatabaseError(.clusterFailed, "initdb failed: \(result.lastLine)")
        }
        var configuration: [String: String] = [
            "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": "''",
            "max_connections": "200",
            "logging_collector": "off",
        ]
        configuration.merge(settings) { _, new in new }
        let lines = configuration.sorted { $0.key < $1.key }.map { "\($0.key) = \($0.value)" }
        let text = "\n# petstore\n" + lines.joined(separator: "\n") + "\n"
        guard let handle = FileHandle(forWritingAtPath: dataDirectory.appending(path: "postgresql.conf").path) else {
            throw DatabaseError(.clusterFailed, "cannot open postgresql.conf of the new cluster")
        }
        handle.seekToEndOfFile()
        handle.write(Data(text.utf8))
        handle.closeFile()
    }

    /// The port of a server already running on this data directory, if any.
    /// A `postmaster.pid` left by a crash (its process gone) is removed.
    private func runningPort() throws(DatabaseError) -> Int? {
        let pidFile = dataDirectory.appending(path: "postmaster.pid")
        guard let text = try? String(contentsOf: pidFile, encoding: .utf8) else { return nil }
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        if let pid = lines.first.flatMap({ Int32($0) }), Self.isPostgres(pid: pid), lines.count > 3, let port = Int(lines[3]) {
            return port
        }
        logger.notice("removing stale postmaster.pid", metadata: ["file": "\(pidFile.path)"])
        try? FileManager.default.removeItem(at: pidFile)
        return nil
    }

    func launch(binaries: PostgresBinaries, account: ServerAccount, port fixed: Int? = nil) throws(DatabaseError) -> Int {
        var lastError = ""
        for _ in 0..<(fixed == nil ? 3 : 1) {
            let port: Int
            if let fixed { port = fixed } else { port = try Self.freePort() }
            let result = try Shell.run(account.command([
                binaries.path("pg_ctl"), "-D", dataDirectory.path, "-l", logFile.path, "-w", "-t", "60",
                "-o", "-p \(port)", "start",
            ]))
            if result.status == 0 {
                logger.info("local PostgreSQL started", metadata: ["port": "\(port)", "directory": "\(dataDirectory.path)"])
                return port
            }
            lastError = (try? String(contentsOf: logFile, encoding: .utf8))?
                .split(separator: "\n").last(where: { $0.contains("FATAL") || $0.contains("ERROR") }).map(String.init)
                ?? result.lastLine
            if !lastError.contains("in use") { break }
        }
        throw DatabaseError(.clusterFailed, "local PostgreSQL did not start: \(lastError) (log: \(logFile.path))")
    }

    // MARK: - Helpers

    static func isPostgres(pid: Int32) -> Bool {
        guard pid > 0, kill(pid, 0) == 0 || errno == EPERM else { return false }
        let command = (try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8)) ?? ""
        return command.hasPrefix("postgres") || command.hasPrefix("postmaster")
    }

    /// A port nothing listens on now on 127.0.0.1, picked at random and released.
    package static func freePort() throws(DatabaseError) -> Int {
        // Below the kernel's ephemeral range: a port found free there is handed to the next
        // outgoing connection just as readily, and a server started on it a moment later finds
        // it taken ("address already in use", seen under a parallel test run).
        let ephemeralStart = (try? String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8))
            .flatMap { $0.split(whereSeparator: \.isWhitespace).first.flatMap { Int($0) } } ?? 32768
        if ephemeralStart > 11_000 {
            for _ in 0..<64 {
                let candidate = Int.random(in: 10_000..<ephemeralStart)
                if (try? bindable(candidate)) != nil { return candidate }
            }
        }
        return try bindable(0)
    }

    /// Binds `port` on 127.0.0.1 (0: any), lets it go, and returns the port bound.
    private static func bindable(_ port: Int) throws(DatabaseError) -> Int {
        let socketDescriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard socketDescriptor >= 0 else { throw DatabaseError(.clusterFailed, "cannot open a socket to find a free port") }
        defer { close(socketDescriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { socketAddress in
                bind(socketDescriptor, socketAddress, length) == 0 && getsockname(socketDescriptor, socketAddress, &length) == 0
            }
        }
        guard bound else { throw DatabaseError(.clusterFailed, "cannot find a free port on 127.0.0.1") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    static func reason(_ error: any Error) -> String {
        (error as NSError).localizedFailureReason ?? (error as NSError).localizedDescription
    }
}

/// A started (or found running) local cluster.
public struct RunningCluster: Sendable {
    let cluster: LocalCluster
    let binaries: PostgresBinaries
    let account: ServerAccount
    public let port: Int
    let credentials: Credentials
    /// False when another process had already started it: then this one must not stop it.
    public let startedHere: Bool

    /// The superuser, for bootstrapping and for tests that act as an attacker with table access.
    public var superuserURL: DatabaseURL {
        DatabaseURL(host: "127.0.0.1", port: port, username: "postgres", password: credentials.superuserPassword, database: "postgres")
    }

    /// The owner of the schema: migrations run as this role.
    public var ownerURL: DatabaseURL {
        DatabaseURL(
            host: "127.0.0.1", port: port, username: LocalCluster.ownerRole, password: credentials.ownerPassword,
            database: LocalCluster.databaseName
        )
    }

    /// The application's role: not the owner, not a superuser, no BYPASSRLS.
    public var appURL: DatabaseURL {
        DatabaseURL(
            host: "127.0.0.1", port: port, username: LocalCluster.appRole, password: credentials.appPassword,
            database: LocalCluster.databaseName
        )
    }

    /// Stops the server with a fast shutdown (open sessions are ended, work is kept).
    public func stop() {
        let result = try? Shell.run(account.command([
            binaries.path("pg_ctl"), "-D", cluster.dataDirectory.path, "-m", "fast", "-w", "-t", "60", "stop",
        ]))
        if result?.status == 0 {
            cluster.logger.info("local PostgreSQL stopped")
        } else {
            cluster.logger.warning("local PostgreSQL did not stop cleanly", metadata: ["output": "\(result?.lastLine ?? "")"])
        }
    }

    /// Starts the stopped server again on the same port, so URLs handed out keep working (for
    /// tests that take the database away and bring it back).
    public func restart() throws(DatabaseError) {
        _ = try cluster.launch(binaries: binaries, account: account, port: port)
    }

    /// The folder the server's files live in (see `LocalCluster.serverDirectory`).
    public var serverDirectory: URL { cluster.serverDirectory }

    /// Stops the server and removes everything of the cluster: its data folder and, when the
    /// server's folder was relocated, that folder too. For throwaway clusters.
    public func destroy() {
        stop()
        let server = cluster.serverDirectory
        if !server.path.hasPrefix(cluster.directory.path + "/") {
            try? FileManager.default.removeItem(at: server)
        }
        try? FileManager.default.removeItem(at: cluster.directory)
    }

    func bootstrapRoles() async throws(DatabaseError) {
        // Passwords are hex we generated ourselves (checked in Credentials), and DDL takes no binds,
        // so they are the one value written into SQL text.
        let owner = LocalCluster.ownerRole, app = LocalCluster.appRole, database = LocalCluster.databaseName
        let statements: [String] = [
            """
            DO $$ BEGIN
              IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '\(owner)') THEN
                CREATE ROLE \(owner) LOGIN CREATEDB CREATEROLE PASSWORD '\(credentials.ownerPassword)';
              END IF;
              IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '\(app)') THEN
                CREATE ROLE \(app) LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE PASSWORD '\(credentials.appPassword)';
              END IF;
            END $$
            """,
            "SELECT 1 FROM pg_database WHERE datname = '\(database)'",
        ]
        try await SuperuserSession.run(url: superuserURL, logger: cluster.logger) { session in
            try await session.execute(statements[0])
            if try await session.count(statements[1]) == 0 {
                try await session.execute("CREATE DATABASE \(database) OWNER \(owner)")
            }
        }
    }
}

/// Where the PostgreSQL server binaries are.
struct PostgresBinaries: Sendable {
    let directory: URL

    func path(_ tool: String) -> String { directory.appending(path: tool).path }

    static func locate(
        environment: [String: String] = ProcessInfo.processInfo.environment,
        debianRoot: URL = URL(fileURLWithPath: "/usr/lib/postgresql")
    ) throws(DatabaseError) -> PostgresBinaries {
        var candidates: [URL] = []
        if let configured = environment["PG_BINDIR"] {
            candidates.append(URL(fileURLWithPath: configured))
        }
        let versions = (try? FileManager.default.contentsOfDirectory(atPath: debianRoot.path)) ?? []
        for version in versions.compactMap(Int.init).sorted(by: >) {
            candidates.append(debianRoot.appending(path: "\(version)/bin"))
        }
        for entry in (environment["PATH"] ?? "").split(separator: ":") {
            candidates.append(URL(fileURLWithPath: String(entry)))
        }
        for candidate in candidates where ["initdb", "pg_ctl", "postgres"].allSatisfy({
            FileManager.default.isExecutableFile(atPath: candidate.appending(path: $0).path)
        }) {
            return PostgresBinaries(directory: candidate)
        }
        throw DatabaseError(
            .binariesNotFound,
            "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found: install them (Debian/Ubuntu: apt-get install postgresql), set PG_BINDIR, or set DATABASE_URL to use an existing server"
        )
    }
}

/// Who the server runs as: ourselves, or the `postgres` user when we are root.
struct ServerAccount: Sendable {
    struct User: Sendable {
        let name: String
        let uid: uid_t
        let gid: gid_t
    }

    let runAs: User?

    static func current() throws(DatabaseError) -> ServerAccount {
        guard geteuid() == 0 else { return ServerAccount(runAs: nil) }
        guard let entry = getpwnam("postgres") else {
            throw DatabaseError(
                .clusterFailed,
                "PostgreSQL refuses to run as root and there is no 'postgres' user to run it as: create one (useradd --system postgres) or run as another user"
            )
        }
        return ServerAccount(runAs: User(name: "postgres", uid: entry.pointee.pw_uid, gid: entry.pointee.pw_gid))
    }

    /// Whether the server's user can write in `folder` (every parent searchable, the folder its own).
    func canReach(_ folder: URL) -> Bool {
        guard runAs != nil else { return true }
        let probe = try? Shell.run(command(["/usr/bin/test", "-w", folder.path]))
        return probe?.status == 0
    }

    /// The command line, wrapped so that it runs as the server's user.
    func command(_ arguments: [String]) -> [String] {
        guard let user = runAs else { return arguments }
        if FileManager.default.isExecutableFile(atPath: "/usr/sbin/runuser") {
            return ["/usr/sbin/runuser", "-u", user.name, "--"] + arguments
        }
        return ["/usr/bin/setpriv", "--reuid=\(user.uid)", "--regid=\(user.gid)", "--init-groups", "--"] + arguments
    }
}

/// Generated passwords of the cluster's roles, kept next to it.
struct Credentials: Codable, Sendable {
    let superuserPassword: String
    let ownerPassword: String
    let appPassword: String

    enum CodingKeys: String, CodingKey {
        case superuserPassword = "superuser_password"
        case ownerPassword = "owner_password"
        case appPassword = "app_password"
    }

    static func load(or file: URL) throws(DatabaseError) -> Credentials {
        if let data = try? Data(contentsOf: file) {
            guard let credentials = try? JSONDecoder().decode(Credentials.self, from: data),
                  [credentials.superuserPassword, credentials.ownerPassword, credentials.appPassword].allSatisfy(isGenerated)
            else {
                throw DatabaseError(.directoryNotUsable, "\(file.path) is damaged: remove the folder to start a new local cluster")
            }
            return credentials
        }
        let credentials = Credentials(superuserPassword: generate(), ownerPassword: generate(), appPassword: generate())
        do {
            try JSONEncoder().encode(credentials).write(to: file, options: .atomic)
            chmod(file.path, 0o600)
        } catch {
            throw DatabaseError(.directoryNotUsable, "cannot write \(file.path): \(LocalCluster.reason(error))")
        }
        return credentials
    }

    static func generate() -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<16).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &generator)) }.joined()
    }

    static func isGenerated(_ password: String) -> Bool {
        password.count == 32 && password.allSatisfy(\.isHexDigit)
    }
}

/// Runs a command to completion and captures its combined output.
enum Shell {
    struct Result {
        let status: Int32
        let output: String
        var lastLine: String {
            output.split(separator: "\n").last.map(String.init) ?? "exit status \(status)"
        }
    }

    /// Runs in `/`: the server's user may not be able to enter the caller's working folder.
    static func run(_ arguments: [String]) throws(DatabaseError) -> Result {
        let child = try ChildProcess.spawn(arguments, workingDirectory: "/")
        let status = child.waitBlocking()
        return Result(status: status, output: child.output)
    }
}
