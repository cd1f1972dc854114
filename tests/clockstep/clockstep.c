/* An NTP step for one process tree: LD_PRELOAD this and the wall clock jumps, the monotonic
 * clocks do not.
 *
 * The offset is a little-endian int64 of nanoseconds at the start of the file named by
 * CLOCKSTEP_FILE, mapped shared and read at every call, so a test steps the clock of running
 * processes by rewriting those eight bytes. Intercepted: clock_gettime for CLOCK_REALTIME and
 * CLOCK_REALTIME_COARSE, gettimeofday and time(). CLOCK_MONOTONIC, CLOCK_BOOTTIME and the rest
 * pass through untouched, as under a real step. (libfaketime 0.9.10 with
 * FAKETIME_DONT_FAKE_MONOTONIC=1 makes time.sleep fail with EINVAL, hence this shim.)
 *
 * Build: gcc -shared -fPIC -O2 -o clockstep.so clockstep.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

typedef int (*clock_gettime_fn)(clockid_t, struct timespec *);
typedef int (*gettimeofday_fn)(struct timeval *, void *);

static volatile const int64_t *offset_ns;
static clock_gettime_fn real_clock_gettime;
static gettimeofday_fn real_gettimeofday;

__attribute__((constructor)) static void clockstep_init(void)
{
    real_clock_gettime = (clock_gettime_fn)dlsym(RTLD_NEXT, "clock_gettime");
    real_gettimeofday = (gettimeofday_fn)dlsym(RTLD_NEXT, "gettimeofday");
    const char *path = getenv("CLOCKSTEP_FILE");
    if (path == NULL) {
        return;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return;
    }
    void *map = mmap(NULL, sizeof(int64_t), PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (map != MAP_FAILED) {
        offset_ns = (volatile const int64_t *)map;
    }
}

static int64_t current_offset_ns(void) { return offset_ns != NULL ? *offset_ns : 0; }

static void shift(struct timespec *ts, int64_t off)
{
    int64_t ns = (int64_t)ts->tv_nsec + off % 1000000000LL;
    ts->tv_sec += (time_t)(off / 1000000000LL);
    if (ns < 0) {
        ns += 1000000000LL;
        ts->tv_sec -= 1;
    } else if (ns >= 1000000000LL) {
        ns -= 1000000000LL;
        ts->tv_sec += 1;
    }
    ts->tv_nsec = (long)ns;
}

int clock_gettime(clockid_t clk, struct timespec *ts)
{
    if (real_clock_gettime == NULL) {
        real_clock_gettime = (clock_gettime_fn)dlsym(RTLD_NEXT, "clock_gettime");
    }
    int rc = real_clock_gettime(clk, ts);
    if (rc == 0 && (clk == CLOCK_REALTIME || clk == CLOCK_REALTIME_COARSE)) {
        shift(ts, current_offset_ns());
    }
    return rc;
}

int gettimeofday(struct timeval *tv, void *tz)
{
    if (real_gettimeofday == NULL) {
        real_gettimeofday = (gettimeofday_fn)dlsym(RTLD_NEXT, "gettimeofday");
    }
    int rc = real_gettimeofday(tv, tz);
    if (rc == 0) {
        struct timespec ts = {tv->tv_sec, (long)tv->tv_usec * 1000L};
        shift(&ts, current_offset_ns());
        tv->tv_sec = ts.tv_sec;
        tv->tv_usec = ts.tv_nsec / 1000L;
    }
    return rc;
}

time_t time(time_t *out)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0) {
        return (time_t)-1;
    }
    if (out != NULL) {
        *out = ts.tv_sec;
    }
    return ts.tv_sec;
}
