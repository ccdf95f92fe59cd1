/*
** A wall clock that is off by a set amount, for one process of a chaos run: preloaded
** (LD_PRELOAD) into a node process, it adds CHAOS_CLOCK_SKEW_MS (a signed number of
** milliseconds, at most a day either way; anything else means 0) to every CLOCK_REALTIME
** reading the process takes through clock_gettime, gettimeofday or time — the clock that
** hdbrepl's HLC reads (std::chrono::system_clock). Monotonic clocks are left alone, so
** timeouts and timers behave. The product has no such hook: the skew lives only here.
*/
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <sys/time.h>
#include <time.h>

static long long skew_ms(void) {
    static int read;
    static long long skew;
    if (!read) {
        const char* s = getenv("CHAOS_CLOCK_SKEW_MS");
        long long v = 0;
        if (s && *s) {
            char* end = NULL;
            errno = 0;
            v = strtoll(s, &end, 10);
            if (errno != 0 || end == s || *end != '\0' || v > 86400000LL || v < -86400000LL) v = 0;
        }
        skew = v;
        read = 1;
    }
    return skew;
}

static void shift(struct timespec* ts) {
    long long ns = (long long)ts->tv_nsec + (skew_ms() % 1000) * 1000000LL;
    ts->tv_sec += (time_t)(skew_ms() / 1000);
    while (ns < 0) { ns += 1000000000LL; ts->tv_sec -= 1; }
    while (ns >= 1000000000LL) { ns -= 1000000000LL; ts->tv_sec += 1; }
    ts->tv_nsec = (long)ns;
}

int clock_gettime(clockid_t id, struct timespec* ts) {
    static int (*real)(clockid_t, struct timespec*);
    if (!real) real = (int (*)(clockid_t, struct timespec*))dlsym(RTLD_NEXT, "clock_gettime");
    int rc = real(id, ts);
    if (rc == 0 && (id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE)) shift(ts);
    return rc;
}

int gettimeofday(struct timeval* tv, void* tz) { /* tv is never NULL (glibc declares it nonnull) */
    struct timespec ts;
    int rc = clock_gettime(CLOCK_REALTIME, &ts);
    (void)tz;
    if (rc == 0) {
        tv->tv_sec = ts.tv_sec;
        tv->tv_usec = (suseconds_t)(ts.tv_nsec / 1000);
    }
    return rc;
}

time_t time(time_t* out) {
    struct timespec ts;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0) return (time_t)-1;
    if (out) *out = ts.tv_sec;
    return ts.tv_sec;
}
