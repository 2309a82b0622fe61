import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A child process whose combined output goes to a temporary file.
///
/// Uses `posix_spawn` and `waitpid` directly: Foundation's `Process` was seen to miss the exit of
/// `pg_ctl start` (whose server outlives it) and wait forever. Output goes to a file, not a pipe,
/// since a server started by the child inherits descriptors and would hold a pipe open.
package final class ChildProcess: Sendable {
    package let pid: pid_t
    package let outputPath: String
    private let reaped = Mutex<Int32?>(nil)

    private init(pid: pid_t, outputPath: String) {
        self.pid = pid
        self.outputPath = outputPath
    }

    deinit { unlink(outputPath) }

    /// Starts `arguments` (an absolute path first), in `workingDirectory` when given.
    package static func spawn(
        _ arguments: [String], environment: [String: String]? = nil, workingDirectory: String? = nil
    ) throws(DatabaseError) -> ChildProcess {
        let outputPath = FileManager.default.temporaryDirectory.appending(path: "petstore-\(UUID().uuidString).out").path
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        // Nothing else of ours may leak into the child: an inherited database socket would keep
        // a connection open for as long as the child (or a server it starts) lives.
        _ = Self.closeFrom?(&actions, 3)
        if let workingDirectory {
            guard let changeDirectory = Self.changeDirectory else {
                throw DatabaseError(.clusterFailed, "this C library cannot start a process in another folder")
            }
            _ = changeDirectory(&actions, workingDirectory)
        }

        let argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        let environmentPairs = (environment ?? ProcessInfo.processInfo.environment).map { "\($0.key)=\($0.value)" }
        let envp: [UnsafeMutablePointer<CChar>?] = environmentPairs.map { strdup($0) } + [nil]
        defer { envp.forEach { free($0) } }

        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, arguments[0], &actions, nil, argv, envp)
        guard spawned == 0 else {
            unlink(outputPath)
            throw DatabaseError(.clusterFailed, "cannot run \(arguments[0]): \(String(cString: strerror(spawned)))")
        }
        return ChildProcess(pid: pid, outputPath: outputPath)
    }

    /// glibc's `posix_spawn_file_actions_addclosefrom_np` (2.34+), which Swift's Glibc module does
    /// not import; looked up at run time, and skipped on a libc without it.
    private typealias CloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
    private static let closeFrom: CloseFrom? = {
        guard let symbol = dlsym(nil, "posix_spawn_file_actions_addclosefrom_np") else { return nil }
        return unsafeBitCast(symbol, to: CloseFrom.self)
    }()

    /// glibc's `posix_spawn_file_actions_addchdir_np` (2.29+), looked up the same way.
    private typealias ChangeDirectory = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, UnsafePointer<CChar>) -> Int32
    private static let changeDirectory: ChangeDirectory? = {
        guard let symbol = dlsym(nil, "posix_spawn_file_actions_addchdir_np") else { return nil }
        return unsafeBitCast(symbol, to: ChangeDirectory.self)
    }()

    /// Waits for the exit and returns the exit status (128 + signal number when killed).
    ///
    /// The wait happens on a thread of its own. On a machine with two cores Swift's concurrency
    /// has two threads; two tasks blocked in `waitpid` there stop every other task in the process,
    /// including whatever the child is waiting for (a lock held by a transaction of ours, an answer
    /// from our own server), and the process hangs for good.
    @discardableResult
    package func wait() async -> Int32 {
        await withCheckedContinuation { continuation in
            Thread.detachNewThread { continuation.resume(returning: self.waitBlocking()) }
        }
    }

    /// `wait()` on the calling thread: for code that is not async (start-up, tear-down after a
    /// SIGKILL) and so cannot hold up a task.
    @discardableResult
    package func waitBlocking() -> Int32 {
        reaped.withLock { reaped in
            if let reaped { return reaped }
            var status: Int32 = 0
            while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
            reaped = Self.decode(status)
            return Self.decode(status)
        }
    }

    /// The exit status if the process has ended, without waiting.
    package func exitStatus() -> Int32? {
        reaped.withLock { reaped in
            if let reaped { return reaped }
            var status: Int32 = 0
            guard waitpid(pid, &status, WNOHANG) == pid else { return nil }
            reaped = Self.decode(status)
            return reaped
        }
    }

    private static func decode(_ status: Int32) -> Int32 {
        (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    }

    package func signal(_ signal: Int32) {
        kill(pid, signal)
    }

    package var output: String {
        (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
    }
}
