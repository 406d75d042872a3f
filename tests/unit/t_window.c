/* flow-control window policy (core/window.c) */
#include "t.h"
#include "window.h"

#define MiB (1u << 20)

TEST(window_target_by_stream_count)
{
    for (uint32_t n = 1; n <= 50; n++)
        CHECK_MSG(ri_window_target(n, 0) == 4 * MiB, "n=%u: %u", n, ri_window_target(n, 0));
    CHECK(ri_window_target(51, 0) < 4 * MiB);
    CHECK_INT(ri_window_target(0, 0), 4 * MiB);
    CHECK_INT(ri_window_target(100, 0), 2 * MiB);
    CHECK_INT(ri_window_target(200, 0), 1 * MiB);
    CHECK_INT(ri_window_target(2000, 0), 1 * MiB);
    CHECK_INT(ri_window_target(UINT32_MAX, 0), 1 * MiB);
}

TEST(window_target_sustained_floor)
{
    static const uint32_t ns[] = {0, 1, 10, 50, 100, 200, 2000};
    for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++)
        CHECK_MSG(ri_window_target(ns[i], 1) == RI_WINDOW_MIN, "n=%u", ns[i]);
    CHECK_INT(RI_WINDOW_MIN, 1 * MiB);
}

TEST(window_target_monotone)
{
    uint32_t prev = ri_window_target(1, 0);
    for (uint32_t n = 2; n <= 5000; n++) {
        uint32_t w = ri_window_target(n, 0);
        CHECK_MSG(w <= prev, "target(%u) = %u > target(%u) = %u", n, w, n - 1, prev);
        CHECK_MSG(w >= RI_WINDOW_MIN && w <= RI_WINDOW_MAX, "target(%u) = %u", n, w);
        prev = w;
    }
}

TEST(window_grant_thresholds)
{
    const uint32_t T = 4 * MiB;
    const uint64_t base = 1ull << 40; /* large running totals must not matter */
    CHECK_INT(ri_window_grant(base + T, base, T), 0);          /* nothing consumed */
    CHECK_INT(ri_window_grant(base + T, base + T, T), T);      /* all consumed */
    CHECK_INT(ri_window_grant(base, base, T), T);
    /* under a quarter of the target free: wait and batch */
    CHECK_INT(ri_window_grant(base + T, base + T / 4 - 1, T), 0);
    CHECK_INT(ri_window_grant(base + T, base + T / 4, T), T / 4);
    CHECK_INT(ri_window_grant(base + T, base + T / 2, T), T / 2);
    /* more in use than the (shrunk) target: nothing */
    CHECK_INT(ri_window_grant(base + 3 * MiB, base, 1 * MiB), 0);
    CHECK_INT(ri_window_grant(base + 1 * MiB, base, 1 * MiB), 0);
}

TEST(window_grant_never_exceeds_target)
{
    t_seed(3);
    uint64_t granted = RI_WINDOW_INITIAL, consumed = 0;
    uint32_t grants = 0;
    for (int step = 0; step < 200000; step++) {
        /* the stream count moves around, so does the target */
        uint32_t target = ri_window_target(1 + t_rand() % 400, (t_rand() & 15) == 0);
        uint64_t avail = granted - consumed;
        if (avail)
            consumed += t_rand() % (avail < 70000 ? avail + 1 : 70000);
        uint32_t g = ri_window_grant(granted, consumed, target);
        CHECK_MSG(g == 0 || g >= target / 4, "step %d: grant %u below a quarter of %u", step,
                  g, target);
        uint64_t before = granted - consumed;
        granted += g;
        CHECK_MSG(g == 0 || granted - consumed <= target,
                  "step %d: in use %llu > target %u after grant %u", step,
                  (unsigned long long)(granted - consumed), target, g);
        CHECK_MSG(g || before > target - target / 4,
                  "step %d: stalled with %llu in use, target %u", step,
                  (unsigned long long)before, target);
        grants += g > 0;
    }
    CHECK(grants > 1000);
}
