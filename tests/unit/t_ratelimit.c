/* t_ratelimit.c -- the log limiter. */
#include "ratelimit.h"
#include "t.h"

#define MS 1000000ull

TEST(ratelimit_burst_then_held_then_reported)
{
    struct ri_ratelimit rl = RI_RATELIMIT_INIT(1000 * MS, 3);
    uint64_t held = 99, now = 5000 * MS;
    for (int i = 0; i < 3; i++) {
        CHECK_INT(ri_ratelimit_pass(&rl, now + (uint64_t)i, &held), 1);
        CHECK_INT(held, 0);
    }
    for (int i = 0; i < 1000; i++)
        CHECK_INT(ri_ratelimit_pass(&rl, now + 10 + (uint64_t)i, &held), 0);
    /* still inside the interval */
    CHECK_INT(ri_ratelimit_pass(&rl, now + 999 * MS, &held), 0);
    /* the next interval: the first line says how many were held back */
    CHECK_INT(ri_ratelimit_pass(&rl, now + 1000 * MS, &held), 1);
    CHECK_INT(held, 1001);
    CHECK_INT(ri_ratelimit_pass(&rl, now + 1001 * MS, &held), 1);
    CHECK_INT(held, 0);
}

TEST(ratelimit_defaults_and_clock_going_back)
{
    struct ri_ratelimit rl = {0}; /* one per second */
    uint64_t held;
    CHECK_INT(ri_ratelimit_pass(&rl, 10 * 1000 * MS, &held), 1);
    CHECK_INT(ri_ratelimit_pass(&rl, 10 * 1000 * MS + 1, &held), 0);
    CHECK_INT(ri_ratelimit_pass(&rl, 11 * 1000 * MS, &held), 1);
    CHECK_INT(held, 1);
    /* a clock that jumps back starts a new interval instead of stalling */
    CHECK_INT(ri_ratelimit_pass(&rl, 3 * 1000 * MS, &held), 1);
    /* a zero clock still works */
    struct ri_ratelimit z = {0};
    CHECK_INT(ri_ratelimit_pass(&z, 0, &held), 1);
    CHECK_INT(ri_ratelimit_pass(&z, 0, &held), 0);
}
