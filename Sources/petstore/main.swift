import Foundation
import NIOCore
import NIOPosix

// Run Swift concurrency on NIO's event loop threads, so that a query's continuation resumes on
// the thread that read its result instead of hopping to another pool (the hops were most of the
// client's CPU in bench/append.sh). It must happen before the first task exists, hence here.
_ = NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
await Petstore.runMain()
