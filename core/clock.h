/* clock.h -- the core's monotonic clock (nanoseconds). The core reads time
 * here, never through the plugin-facing services table. */
#ifndef RI_CLOCK_H
#define RI_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t ri_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

#endif
