/* A disk whose flushes are slow, for benchmarks: preloaded into PostgreSQL (LD_PRELOAD), it makes
 * every fsync and fdatasync wait SLOW_FSYNC_US microseconds before doing the real one. That is
 * what a commit costs on a network volume or an SSD without power-loss protection (0.5 to 5 ms),
 * where this machine's disk flushes in about 0.3 ms.
 *
 *   cc -shared -fPIC -O2 -o slow_fsync.so bench/lib/slow_fsync.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <time.h>

static void wait_like_a_slow_disk(void) {
    static long micros = -1;
    if (micros < 0) {
        const char *text = getenv("SLOW_FSYNC_US");
        micros = text ? atol(text) : 0;
    }
    if (micros > 0) {
        struct timespec delay = { micros / 1000000, (micros % 1000000) * 1000 };
        while (nanosleep(&delay, &delay) != 0) {}
    }
}

int fdatasync(int fd) {
    static int (*real)(int);
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    wait_like_a_slow_disk();
    return real(fd);
}

int fsync(int fd) {
    static int (*real)(int);
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    wait_like_a_slow_disk();
    return real(fd);
}
